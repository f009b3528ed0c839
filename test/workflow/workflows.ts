/**
 * The workflow tier's bundle: the production migration (and its child syncVolume) as the control
 * worker registers them, plus `fakeFederation`, a stand-in for `federation-<name>` that answers the
 * migration's proposals by the signals of core/contracts/federation.ts, with no sites behind it.
 *
 * Each proposal is shown to the test through the `federationProposed` activity, which records it
 * in the same call log as the mocked activities (so the test sees one ordered sequence) and
 * returns the test's verdict: commit, reject (the log refuses an entry, as over capacity), or
 * hold (no quorum: never answered). As the real federation does, a proposal resent under a
 * request id already answered gets the first answer again.
 */
import { condition, getExternalWorkflowHandle, proxyActivities, setHandler } from '@temporalio/workflow';
import { commitResultSignal, proposeSignal, type ProposalResult, type ProposeFromWorkflow } from '../../core/contracts/federation';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
export { migrateWorkload, syncVolume } from '../../workflows';

export type FederationVerdict = { commit: true } | { reject: string } | { hold: true };
export interface FederationTestActivities {
  federationProposed(p: { proposal: ProposeFromWorkflow; resent: boolean }): Promise<FederationVerdict>;
}

const { federationProposed } = proxyActivities<FederationTestActivities>({ taskQueue: CONTROL_TASK_QUEUE, startToCloseTimeout: '10 seconds' });

export async function fakeFederation(input: { members: string[] }): Promise<never> {
  const answered = new Map<string, ProposalResult>();
  let round = 0;
  setHandler(proposeSignal, async (p) => {
    const first = answered.get(p.requestId);
    const verdict = await federationProposed({ proposal: p, resent: first !== undefined });
    let result = first;
    if (!result) {
      if ('hold' in verdict) return;
      round++;
      result = {
        requestId: p.requestId,
        protocol: 'cft',
        round,
        certificate: { protocol: 'cft', term: 1, index: round, firstIndex: round, ackedBy: input.members },
        summary: { protocol: 'cft', term: 1, index: round, ackedBy: input.members },
        quorum: { needed: Math.floor(input.members.length / 2) + 1, total: input.members.length, got: input.members.length },
        waitedMs: 0,
        rejected: 'reject' in verdict ? p.entries.map((_, position) => ({ position, reason: verdict.reject })) : [],
      };
      answered.set(p.requestId, result);
    }
    await getExternalWorkflowHandle(p.replyTo).signal(commitResultSignal, { requestId: p.requestId, result });
  });
  // An entity: it runs until the test terminates it.
  await condition(() => false);
  throw new Error('unreachable');
}
