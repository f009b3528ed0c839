/**
 * How the migration commits a change to the federation log (CFT when every site it touches is
 * trusted, BFT otherwise). Three ways, by shape (see ./patches.ts):
 * - v4 `commitByUpdate` (update-commits-v1): the one way. The proposal goes by update through the
 *   `proposeFast` local activity; while it has no answer, the federation's status line goes into
 *   progress and the same request id is sent again (the federation queues it once).
 * - v3 `commitFast` (fast-cutover-v1): by update first, then by signal.
 * - v2 `commitBySignal` (federation-commits-v1): by signal, answered by signal.
 * Compensations (`settleInLog`) go by update in v4 and by signal before it.
 */
import { ApplicationFailure, isCancellation, log, sleep } from '@temporalio/workflow';
import type { FastProposal } from '../../activities/control';
import { FailureType } from '../../core/contracts/failures';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import type { FederationEntry } from '../../core/consensus/entries';
import type { FederationCommitRecord, StepId } from '../../core/migration';
import { changeResult, commitFederationChange, type FederationChangeOptions, type FederationChangeResult } from '../federation/client';
import type { Migration } from './context';
import { COMMIT_REPOLL_WAIT_MS, controlFast, controlWait, FAST_COMMIT_WAIT_MS, LONG_WAIT_MS } from './proxies';

/** A compensation's release of the reservation is not awaited past this: once sent, the federation applies it when it can. */
export const RELEASE_WAIT = '30 seconds';
const RELEASE_WAIT_MS = 30_000;

/** A proposal that failed at once (no wait spent) is sent again after this. */
const QUICK_FAILURE_PAUSE_MS = 1_000;
/** Update handler failures (transient ones: a superseded leader) tolerated before the commit fails. */
const MAX_HANDLER_FAILURES = 3;

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
export async function commitToLog(m: Migration, entries: FederationEntry[], what: string, stepId: StepId): Promise<FederationCommitRecord> {
  const opts = commitOpts(m, what, stepId);
  let r: FederationChangeResult;
  if (m.shape.commitsByUpdate) r = await commitByUpdate(m, entries, what, opts);
  else if (m.shape.fastCutover) r = await commitFast(m, entries, what, opts);
  else r = await commitBySignal(m, entries, opts);
  const { rejected: _rejected, ...record } = r;
  return record;
}

/**
 * A compensation's proposal (a release, a settle, a revert): waits at most RELEASE_WAIT, then
 * throws FederationCommitTimeout (the federation still applies it when it can). With
 * `allowRejected`, the log's rejection is an answer, not an error.
 */
export function settleInLog(m: Migration, entries: FederationEntry[], what: string, stepId: StepId, allowRejected: boolean): Promise<FederationChangeResult> {
  const opts: FederationChangeOptions = { ...commitOpts(m, what, stepId), allowRejected, timeout: RELEASE_WAIT };
  if (m.shape.commitsByUpdate) return commitByUpdate(m, entries, what, opts, RELEASE_WAIT_MS);
  return commitFederationChange(entries, opts);
}

/**
 * v4: proposes by update and, while there is no answer, reports the federation's status and sends
 * the same request again. Without `timeoutMs` it waits as long as the quorum takes.
 *
 * History stays small however long the wait: the first two sends are local activities (2 s, then
 * 10 s, each status line going into progress); after that, each send is a task-queue activity that
 * waits up to LONG_WAIT_MS for the answer and heartbeats meanwhile (a few events per wait). Every
 * copy carries the same update id, so the federation holds one waiting update for it, not one per
 * copy. A copy whose update handler failed (a transient `LeaderSuperseded`, say) is sent again
 * under a new update id, at most MAX_HANDLER_FAILURES times.
 */
async function commitByUpdate(m: Migration, entries: FederationEntry[], what: string, opts: FederationChangeOptions, timeoutMs?: number): Promise<FederationChangeResult> {
  const requestId = opts.requestId!;
  const startedMs = Date.now();
  let waitedFor: string | undefined;
  let reported = false;
  let failures = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      const remainingMs = timeoutMs === undefined ? Infinity : timeoutMs - (Date.now() - startedMs);
      const long = attempt > 2 && timeoutMs === undefined;
      const waitMs = Math.max(1_000, Math.min(attempt === 1 ? FAST_COMMIT_WAIT_MS : long ? LONG_WAIT_MS : COMMIT_REPOLL_WAIT_MS, remainingMs));
      const summary = attempt === 1 ? `Propose ${what} to the federation log` : `Wait for the federation log's answer to ${what} (send ${attempt})`;
      const sentMs = Date.now();
      let answer: FastProposal;
      try {
        answer = await (long ? controlWait(summary, waitMs) : controlFast(summary, waitMs)).proposeFast({
          federation: m.v.federation,
          proposal: { entries, touches: opts.touches, requestId },
          waitMs,
          updateId: failures === 0 ? requestId : `${requestId}#${failures}`,
        });
      } catch (err) {
        if (isCancellation(err)) throw err;
        answer = { pending: err instanceof Error ? err.message : String(err) };
      }
      if ('result' in answer) return changeResult(answer.result, opts, waitedFor);
      if (answer.refused) {
        // Never entered the log, so nothing changed: like the log's own rejection.
        throw ApplicationFailure.nonRetryable(`federation change ${requestId} was not taken: ${answer.pending}`, FailureType.FederationChangeRejected);
      }
      if (answer.notRunning) {
        throw ApplicationFailure.nonRetryable(`${answer.pending}; start it before committing changes`, FailureType.FederationNotRunning);
      }
      if (answer.failed !== undefined && ++failures > MAX_HANDLER_FAILURES) {
        throw ApplicationFailure.nonRetryable(`federation change ${requestId} failed: ${answer.pending}`, FailureType.FederationChangeFailed);
      }
      const status = answer.status ?? `no answer yet (${answer.pending})`;
      if (status.startsWith('waiting for quorum')) waitedFor = status;
      opts.onStatus?.(status);
      reported = true;
      if (timeoutMs !== undefined && Date.now() - startedMs >= timeoutMs) {
        throw ApplicationFailure.nonRetryable(`federation change ${requestId} did not commit within ${String(opts.timeout)}: ${status}`, FailureType.FederationCommitTimeout);
      }
      if (attempt === 1) log.info('federation commit: no answer yet; waiting', { requestId, why: answer.pending, status, federation: federationWorkflowId(m.v.federation) });
      // An answer that came back at once (an error, not a wait) is not sent again at once.
      if (Date.now() - sentMs < waitMs / 2) await sleep(Math.min(QUICK_FAILURE_PAUSE_MS, Math.max(1, remainingMs)));
    }
  } finally {
    // The wait is over, whichever way: its status line is no longer true.
    if (reported) delete m.consensus.status;
  }
}

/** v3: by update first; with no answer in FAST_COMMIT_WAIT_MS, by signal, which reports why it waits. */
async function commitFast(m: Migration, entries: FederationEntry[], what: string, opts: FederationChangeOptions): Promise<FederationChangeResult> {
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
  if ('result' in quick) return changeResult(quick.result, {});
  log.info('federation commit: no answer by update yet; waiting by signal', { requestId: opts.requestId, why: quick.pending });
  return commitBySignal(m, entries, opts);
}

async function commitBySignal(m: Migration, entries: FederationEntry[], opts: FederationChangeOptions): Promise<FederationChangeResult> {
  const r = await commitFederationChange(entries, opts);
  delete m.consensus.status;
  return r;
}

export function describeCommit(r: FederationCommitRecord): string {
  const c = r.certificate;
  const who = c.protocol === 'cft' ? `term ${c.term} index ${c.index}, acked by ${c.ackedBy.join(', ')}` : `view ${c.view} seq ${c.seq}, commit signed by ${c.signers.join(', ')}`;
  return `${r.protocol.toUpperCase()} quorum ${r.quorum.got} of ${r.quorum.total} (need ${r.quorum.needed}): ${who}${r.waited ? ' (waited for quorum)' : ''}`;
}
