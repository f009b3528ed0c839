/**
 * How the migration commits a change to the federation log (CFT when every site it touches is
 * trusted, BFT otherwise). Two shapes: `commitBySignal` (federation-commits-v1), and `commitFast`
 * (fast-cutover-v1), which proposes by update first and falls back to the signal.
 */
import { log } from '@temporalio/workflow';
import type { FastProposal } from '../../activities/control';
import type { FederationEntry } from '../../core/consensus/entries';
import type { FederationCommitRecord, StepId } from '../../core/migration';
import { changeResult, commitFederationChange, type FederationChangeOptions } from '../federation/client';
import type { Migration } from './context';
import { controlFast, FAST_COMMIT_WAIT_MS } from './proxies';

/** A compensation's release of the reservation is not awaited past this: once sent, the federation applies it when it can. */
export const RELEASE_WAIT = '30 seconds';

/** Options for one of this run's proposals: its request id, and its status lines into progress. */
export function commitOpts(m: Migration, what: string, stepId: StepId): FederationChangeOptions {
  return {
    federation: m.v.federation,
    touches: [m.v.source],
    requestId: `${m.key}/${what}`,
    onStatus: (status) => {
      m.consensus.status = status;
      m.runner.step(stepId).detail = status;
    },
  };
}

/** Commits `entries` the way this run's shape does; throws FederationChangeRejected if the log rejects them. */
export function commitToLog(m: Migration, entries: FederationEntry[], what: string, stepId: StepId): Promise<FederationCommitRecord> {
  const opts = commitOpts(m, what, stepId);
  return m.shape.fastCutover ? commitFast(m, entries, what, opts) : commitBySignal(m, entries, opts);
}

async function commitFast(m: Migration, entries: FederationEntry[], what: string, opts: FederationChangeOptions): Promise<FederationCommitRecord> {
  let quick: FastProposal;
  try {
    quick = await controlFast(`Propose ${what} to the federation log`).proposeFast({
      federation: m.v.federation,
      proposal: { entries, touches: opts.touches, requestId: opts.requestId! },
      waitMs: FAST_COMMIT_WAIT_MS,
    });
  } catch (err) {
    quick = { pending: err instanceof Error ? err.message : String(err) };
  }
  if ('result' in quick) {
    const { rejected: _rejected, ...record } = changeResult(quick.result, {});
    return record;
  }
  // No answer yet (quorum may be missing): wait by signal, which reports why it waits.
  log.info('federation commit: no answer by update yet; waiting by signal', { requestId: opts.requestId, why: quick.pending });
  return commitBySignal(m, entries, opts);
}

async function commitBySignal(m: Migration, entries: FederationEntry[], opts: FederationChangeOptions): Promise<FederationCommitRecord> {
  const r = await commitFederationChange(entries, opts);
  delete m.consensus.status;
  const { rejected: _rejected, ...record } = r;
  return record;
}

export function describeCommit(r: FederationCommitRecord): string {
  const c = r.certificate;
  const who = c.protocol === 'cft' ? `term ${c.term} index ${c.index}, acked by ${c.ackedBy.join(', ')}` : `view ${c.view} seq ${c.seq}, commit signed by ${c.signers.join(', ')}`;
  return `${r.protocol.toUpperCase()} quorum ${r.quorum.got} of ${r.quorum.total} (need ${r.quorum.needed}): ${who}${r.waited ? ' (waited for quorum)' : ''}`;
}
