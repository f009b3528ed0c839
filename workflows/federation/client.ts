/**
 * How another workflow (the migration) commits a change to the federation log:
 *
 *   const r = await commitFederationChange([{ kind: 'placement', workload: 'kv-demo', site: 'dc:frankfurt' }],
 *                                          { touches: ['dc:paris'] });
 *
 * A workflow cannot send an update, so the proposal goes to `federation-<name>` as a signal and
 * the answer comes back as signals to the calling workflow: status lines while the round waits
 * (`waiting for quorum: 2 of 4 sites reachable, need 3`), then the result. While it waits, the
 * caller answers the `federationCommitStatus` query and calls `onStatus`, so its own progress
 * can say why it waits. Nothing commits half-way: the call returns only with a certificate.
 */
import type { Duration } from '@temporalio/common';
import { ApplicationFailure, condition, defineQuery, getExternalWorkflowHandle, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import type { FederationEntry } from '../../core/consensus/entries';
import type { Protocol, SiteId } from '../../core/consensus/types';
import { commitResultSignal, commitStatusSignal, proposeSignal, type CertificateSummary, type ProposalResult, type QuorumFigures } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { FailureType } from '../../core/contracts/failures';

export interface FederationChangeOptions {
  /** The federation's name (workflow id `federation-<name>`); default `local`. */
  federation?: string;
  /** Sites the change touches besides those its entries name, e.g. a migration's source. */
  touches?: SiteId[];
  /** Idempotency key; default a fresh id per call (replay-safe). */
  requestId?: string;
  /** Called with each status line while the commit waits, e.g. to put it in the caller's progress. */
  onStatus?: (status: string) => void;
  /** Give up waiting after this long (the change may still commit later). Default: wait. */
  timeout?: Duration;
  /** Return normally when the log records an entry as rejected (over capacity…). Default: throw FederationChangeRejected. */
  allowRejected?: boolean;
}

export interface FederationChangeResult {
  protocol: Protocol;
  /** Who acked (CFT) or signed (BFT); no signatures, no payloads. */
  certificate: CertificateSummary;
  quorum: QuorumFigures;
  /** True if the round had to wait for quorum at some point. */
  waited: boolean;
  /** The last status line seen while waiting, if any. */
  lastStatus?: string;
  waitedMs: number;
  round: number;
  requestId: string;
  rejected: { position: number; reason: string }[];
}

export interface PendingFederationChange {
  requestId: string;
  entries: number;
  status: string;
}

/** Answered by any workflow that has called commitFederationChange: the changes it is waiting for. */
export const federationCommitStatusQuery = defineQuery<PendingFederationChange[]>('federationCommitStatus');

interface PendingChange {
  entries: number;
  status: string;
  waited: boolean;
  onStatus?: (s: string) => void;
  result?: ProposalResult;
  error?: string;
  done: boolean;
}

/**
 * Per workflow execution. Kept on globalThis, which the SDK swaps per workflow even when it
 * reuses one V8 context for many workflows, so two workflows on a worker never share it.
 */
function clientState(): { pending: Map<string, PendingChange>; installed: boolean } {
  const g = globalThis as unknown as { __fedflowFederationClient?: { pending: Map<string, PendingChange>; installed: boolean } };
  return (g.__fedflowFederationClient ??= { pending: new Map(), installed: false });
}

function installHandlers(): Map<string, PendingChange> {
  const st = clientState();
  const pending = st.pending;
  if (st.installed) return pending;
  st.installed = true;
  setHandler(commitStatusSignal, ({ requestId, status }) => {
    const p = pending.get(requestId);
    if (!p || p.done) return;
    p.status = status;
    if (status.startsWith('waiting for quorum')) p.waited = true;
    p.onStatus?.(status);
  });
  setHandler(commitResultSignal, ({ requestId, result, error }) => {
    const p = pending.get(requestId);
    if (!p || p.done) return;
    p.done = true;
    if (result) p.result = result;
    else p.error = error ?? 'the federation answered without a result';
  });
  setHandler(federationCommitStatusQuery, () => [...pending.entries()].filter(([, p]) => !p.done).map(([requestId, p]) => ({ requestId, entries: p.entries, status: p.status })));
  return pending;
}

export async function commitFederationChange(entries: FederationEntry[], opts: FederationChangeOptions = {}): Promise<FederationChangeResult> {
  const pending = installHandlers();
  const name = opts.federation ?? 'local';
  const requestId = opts.requestId ?? `${workflowInfo().workflowId}/${uuid4()}`;
  const p: PendingChange = {
    entries: entries.length,
    status: 'proposed',
    waited: false,
    done: false,
    ...(opts.onStatus ? { onStatus: opts.onStatus } : {}),
  };
  pending.set(requestId, p);
  try {
    try {
      await getExternalWorkflowHandle(federationWorkflowId(name)).signal(proposeSignal, {
        entries,
        requestId,
        replyTo: workflowInfo().workflowId,
        ...(opts.touches ? { touches: opts.touches } : {}),
      });
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `federation workflow '${federationWorkflowId(name)}' is not running (${(err as Error).message}); start it before committing changes`,
        FailureType.FederationNotRunning,
      );
    }
    const finished = opts.timeout === undefined ? (await condition(() => p.done), true) : await condition(() => p.done, opts.timeout);
    if (!finished) {
      throw ApplicationFailure.nonRetryable(`federation change ${requestId} did not commit within ${String(opts.timeout)}: ${p.status}`, FailureType.FederationCommitTimeout);
    }
    if (p.error !== undefined) throw ApplicationFailure.nonRetryable(`federation change ${requestId} failed: ${p.error}`, FailureType.FederationChangeFailed);
    return changeResult(p.result!, opts, p.waited ? p.status : undefined);
  } finally {
    pending.delete(requestId);
  }
}

/**
 * The federation's answer as a FederationChangeResult (`lastStatus`: the last thing a wait for
 * quorum said). Throws FederationChangeRejected when the log rejected an entry, unless allowed.
 */
export function changeResult(r: Omit<ProposalResult, 'certificate'>, opts: Pick<FederationChangeOptions, 'allowRejected'>, lastStatus?: string): FederationChangeResult {
  if (r.rejected.length && !opts.allowRejected) {
    throw ApplicationFailure.nonRetryable(
      `federation change ${r.requestId} committed in round ${r.round} but the log rejected it: ${r.rejected.map((x) => `entry ${x.position}: ${x.reason}`).join('; ')}`,
      FailureType.FederationChangeRejected,
    );
  }
  return {
    protocol: r.protocol,
    certificate: r.summary,
    quorum: r.quorum,
    waited: lastStatus !== undefined,
    ...(lastStatus !== undefined ? { lastStatus } : {}),
    waitedMs: r.waitedMs,
    round: r.round,
    requestId: r.requestId,
    rejected: r.rejected,
  };
}
