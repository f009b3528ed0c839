/**
 * Step `commit` (runs with federation commits): "the workload now runs on the target". Once
 * proposed it may commit, so the migration rolls forward from here. Only the log's rejection
 * (which changes nothing) still compensates; any other failure proposes again under the same
 * request id, which the federation answers once.
 */
import { ApplicationFailure, CancellationScope, log, sleep } from '@temporalio/workflow';
import { FailureType } from '../../../core/contracts/failures';
import type { FederationCommitRecord } from '../../../core/migration';
import { changeResult } from '../../federation/client';
import type { Migration } from '../context';
import { commitToLog, describeCommit } from '../federation-commit';
import { control } from '../proxies';
import type { CutoverResult } from './cutover-activities';
import { placementEntry, targetRecord } from '../records';
import type { TargetInstance } from './start';

/** A placement commit that failed for a reason other than the log's rejection is proposed again after this, doubling up to the cap. */
const PLACEMENT_RETRY_MS = 2_000;
const PLACEMENT_RETRY_MAX_MS = 60_000;

export async function commitPlacement(m: Migration, cut: CutoverResult, target: TargetInstance): Promise<void> {
  m.runner.rollForward = true;
  m.consensus.placement = await CancellationScope.nonCancellable(() => m.runner.run('commit', () => proposeUntilAnswered(m, cut, target), describeCommit));
}

async function proposeUntilAnswered(m: Migration, cut: CutoverResult, target: TargetInstance): Promise<FederationCommitRecord> {
  // The target proposed it during the cut-over and got the log's answer: that is this
  // step's answer too (asking again would only cost another trip through the server).
  let answered = cut.placement && 'result' in cut.placement ? cut.placement.result : undefined;
  for (let wait = PLACEMENT_RETRY_MS; ; wait = Math.min(2 * wait, PLACEMENT_RETRY_MAX_MS)) {
    try {
      if (answered) {
        const r = answered;
        answered = undefined;
        const { rejected: _rejected, ...record } = changeResult(r, {});
        return record;
      }
      const record = await commitToLog(m, [placementEntry(m, m.v.target, targetRecord(m, target))], 'placement', 'commit');
      // A retry's "proposing again" line is no longer true.
      if (wait > PLACEMENT_RETRY_MS) delete m.consensus.status;
      return record;
    } catch (err) {
      const type = err instanceof ApplicationFailure ? err.type : undefined;
      if (type === FailureType.FederationChangeRejected) {
        m.runner.rollForward = false;
        throw err;
      }
      const why = err instanceof Error ? err.message : String(err);
      m.consensus.status = `placement not committed yet (${why}); proposing again in ${wait / 1000} s`;
      m.runner.step('commit').detail = m.consensus.status;
      log.warn('placement commit failed; proposing again', { error: why });
      await sleep(wait);
      // The federation workflow is gone: start it again (same request id, so a placement
      // it had committed is answered, not applied twice).
      if (type === FailureType.FederationNotRunning) await control('Start the federation workflow again').ensureFederation();
    }
  }
}
