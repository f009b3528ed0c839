/**
 * A proposal to the federation log by update, with a bounded wait: the fast path of a
 * migration's commits (the signal path behind it reports quorum waits and is the retry). Used by
 * the control worker's `proposeFast` and by the target's cut-over, which proposes the placement
 * as soon as it holds the frozen image, verified and on disk.
 */
import type { Client } from '@temporalio/client';
import { proposeUpdate, type ProposalResult, type ProposeInput } from '../core/contracts/federation';
import { federationWorkflowId } from '../core/contracts/task-queues';

/** What the fast path got: the result (without signatures), or why it has none yet. */
export type FastProposal = { result: Omit<ProposalResult, 'certificate'> } | { pending: string };

export interface FastProposalRequest {
  federation: string;
  proposal: ProposeInput & { requestId: string };
  waitMs: number;
}

/** Never throws: any failure, and no answer within `waitMs`, is `{ pending }`. */
export async function proposeByUpdate(client: Client | undefined, args: FastProposalRequest): Promise<FastProposal> {
  if (!client) return { pending: 'no Temporal client in this worker' };
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), args.waitMs);
  try {
    const handle = client.workflow.getHandle(federationWorkflowId(args.federation));
    const r = await client.withAbortSignal(abort.signal, () => handle.executeUpdate(proposeUpdate, { args: [args.proposal] }));
    const { certificate: _certificate, ...result } = r;
    return { result };
  } catch (err) {
    if (abort.signal.aborted) return { pending: `no answer within ${args.waitMs} ms` };
    return { pending: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
