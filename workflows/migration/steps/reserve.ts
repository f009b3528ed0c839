/** Step `reserve` (runs with federation commits): the federation log holds the target's capacity for this move. */
import type { Migration } from '../context';
import { commitToLog, describeCommit, settleInLog } from '../federation-commit';

/** Runs without federation commits (v1) have neither the reservation nor the placement commit. */
export function skipFederationSteps(m: Migration): void {
  m.runner.step('reserve').status = 'skipped';
  m.runner.step('commit').status = 'skipped';
}

// CFT when every site the move touches is trusted, BFT otherwise. Without quorum the step waits
// and says why.
export async function reserve(m: Migration): Promise<void> {
  const { req, v } = m;
  m.runner.progress.consensus = m.consensus;
  // Pushed before the proposal: the federation applies this run's proposals in order, so a
  // release sent after a reserve that commits late still frees it.
  m.saga.push('reserve', async () => {
    // Without quorum the release waits in the federation's queue; the rest of the saga (the
    // lock, the target copy) waits for it at most RELEASE_WAIT.
    await settleInLog(m, [{ kind: 'reservation', op: 'release', workload: req.workloadId, site: v.target }], 'release', 'reserve', true);
  });
  m.consensus.reservation = await m.runner.run(
    'reserve',
    () => commitToLog(m, [{ kind: 'reservation', op: 'reserve', workload: req.workloadId, site: v.target, instances: 1 }], 'reserve', 'reserve'),
    describeCommit,
  );
}
