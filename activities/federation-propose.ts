/**
 * A proposal to the federation log by update, with a bounded wait. It is the one way a migration
 * proposes (shape v4, update-commits-v1): the reservation, the placement and their compensations
 * go through `proposeFast` (the control worker's local activity), and the target's cut-over sends
 * the placement through the same call as soon as it holds the frozen image, under the request id
 * the commit step then waits on. The federation queues a request id once and answers every copy
 * of it, so a wait that gives up is taken up again by sending the same request.
 * (Runs of v2 and v3 also proposed by signal; their histories keep that path.)
 */
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { consensusStatusQuery, proposeUpdate, type ProposalResult, type ProposeInput } from '../core/contracts/federation';
import { federationWorkflowId } from '../core/contracts/task-queues';

/**
 * What a proposal got: the result (without signatures), or why it has none yet. `status` is the
 * federation's own status line when it could be read (`waiting for quorum: 2 of 4 sites
 * reachable, need 3`); `notRunning` says the federation workflow does not exist (start it);
 * `refused` says the federation's validator refused the proposal (a site that is not a member...):
 * it never entered the log, and sending it again cannot help. `failed` names the failure type of
 * an update whose handler failed (`LeaderSuperseded`, `RequestIdReused`...): the proposal may be
 * sent again under a new update id.
 */
export type FastProposal =
  | { result: Omit<ProposalResult, 'certificate'> }
  | { pending: string; status?: string; notRunning?: boolean; refused?: boolean; failed?: string };

export interface FastProposalRequest {
  federation: string;
  proposal: ProposeInput & { requestId: string };
  waitMs: number;
  /**
   * The update's id (default: the request id). A copy sent while an earlier one with this id still
   * waits attaches to it instead of adding a waiting update (the server admits few per workflow);
   * a copy sent after it completed gets its outcome. After a handler failure, send a new one.
   */
  updateId?: string;
}

/** How long reading the federation's status may take once the wait for the answer ran out. */
const STATUS_QUERY_MS = 1_000;

/** Never throws: any failure, and no answer within `waitMs`, is `{ pending }`. */
export async function proposeByUpdate(client: Client | undefined, args: FastProposalRequest): Promise<FastProposal> {
  if (!client) return { pending: 'no Temporal client in this worker' };
  const handle = client.workflow.getHandle(federationWorkflowId(args.federation));
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), args.waitMs);
  try {
    const updateId = args.updateId ?? args.proposal.requestId;
    const r = await client.withAbortSignal(abort.signal, () => handle.executeUpdate(proposeUpdate, { args: [args.proposal], updateId }));
    const { certificate: _certificate, ...result } = r;
    return { result };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError || (err as Error).name === 'WorkflowNotFoundError') {
      return { pending: `federation workflow '${federationWorkflowId(args.federation)}' is not running`, notRunning: true };
    }
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause as (Error & { type?: string }) | undefined;
      const why = cause?.message ?? err.message;
      // The validators throw plain Errors; the handlers throw typed failures.
      const type = cause?.type ?? 'Error';
      if (type === 'Error') return { pending: `the federation refused the proposal: ${why}`, refused: true };
      return { pending: `the federation failed the proposal (${type}): ${why}`, failed: type };
    }
    const pending = abort.signal.aborted ? `no answer within ${args.waitMs} ms` : (err as Error).message;
    // Why no answer yet, in the federation's words (the round it is in, or its wait for quorum).
    const status = await federationStatus(client, handle.workflowId);
    return { pending, ...(status ? { status } : {}) };
  } finally {
    clearTimeout(timer);
  }
}

async function federationStatus(client: Client, workflowId: string): Promise<string | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), STATUS_QUERY_MS);
  try {
    const s = await client.withAbortSignal(abort.signal, () => client.workflow.getHandle(workflowId).query(consensusStatusQuery));
    return s.queued > 0 && s.phase === 'idle' ? `queued (${s.queued} proposals waiting for a round)` : s.status;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
