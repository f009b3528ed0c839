/**
 * `federation`: the long-running entity workflow of one federation (workflow id
 * `federation-<name>`). It is the only writer of the federation log: proposals queue here, run
 * one round at a time (so state changes never interleave), and what is queued when a round
 * starts goes into that round as one batch, which is what gives throughput.
 *
 * Each run is one CFT leader epoch: it takes the previous run's term + 1, so once it has
 * written, an older run's late appends are refused by every site (terms fence). BFT rounds need
 * no epoch: votes are signed and counted at the sites.
 *
 * A thin layer of messages over a plain class (entity.ts), as in the samples' safe-message-handlers:
 * updates and signals only validate and enqueue; validators (core/federation/validators.ts) refuse
 * bad input before it enters history; the main loop below alone runs rounds (rounds.ts);
 * continue-as-new waits for every handler to finish.
 */
import { allHandlersFinished, ApplicationFailure, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import type { SiteId } from '../../core/consensus/types';
import { foundersProblem } from '../../core/federation/validators';
import {
  committedStateQuery, consensusStatusQuery, joinUpdate, leaveUpdate, membershipQuery, proposeBatchUpdate, proposeSignal, proposeUpdate,
  type FederationInput, type JoinInput, type ProposeInput,
} from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { FailureType } from '../../core/contracts/failures';
import { LEADER_SUPERSEDED } from './cft';
import { FederationEntity, REFUSALS_KEPT } from './entity';
import { runNextRound } from './rounds';

export { BFT_ROUTER_VERIFIES_PATCH, DEDUPE_PENDING_PATCH } from './entity';

/** Idle time before the federation tells lagging sites the latest commit index. */
const IDLE_HEARTBEAT_MS = 1_000;
/** The longest a run waits, before continuing as new, for f+1 sites to confirm the last BFT round. */
const FINISH_BEFORE_CAN_MS = 10_000;

export async function federation(input: FederationInput): Promise<void> {
  const info = workflowInfo();
  const expectedId = federationWorkflowId(input.name);
  if (info.workflowId !== expectedId) {
    throw ApplicationFailure.nonRetryable(`workflow id '${info.workflowId}' must be '${expectedId}' for federation '${input.name}'`, FailureType.WrongWorkflowId);
  }
  const founders = input.carry ? undefined : foundersProblem(input);
  if (founders) throw ApplicationFailure.nonRetryable(founders, FailureType.InvalidFederation);
  const fed = new FederationEntity(input);

  // ---- messages ----
  // Proposals are updates, not signals, so a client waits for its certificate (or the refusal).
  setHandler(proposeUpdate, (p: ProposeInput) => fed.propose(p), { validator: (p: ProposeInput) => fed.validateProposal(p) });
  setHandler(proposeBatchUpdate, (ps: ProposeInput[]) => fed.proposeBatch(ps), { validator: (ps: ProposeInput[]) => fed.validateProposeBatch(ps) });
  // Workflows cannot send updates: they propose by signal and are answered by signal.
  setHandler(proposeSignal, (p) => fed.proposeFromWorkflow(p));
  setHandler(joinUpdate, (j: JoinInput) => fed.join(j), { validator: (j: JoinInput) => fed.validateJoin(j) });
  setHandler(leaveUpdate, ({ site }: { site: SiteId }) => fed.leave(site), { validator: ({ site }: { site: SiteId }) => fed.validateLeave(site) });
  setHandler(committedStateQuery, () => fed.state);
  setHandler(membershipQuery, () => fed.membership());
  setHandler(consensusStatusQuery, () => fed.consensusStatus());

  // ---- rounds, one at a time ----
  while (!fed.superseded) {
    fed.status.phase = 'idle';
    fed.status.status = 'idle';
    fed.inRound = [];
    const wake = () => fed.queue.length > 0 || fed.historyFull() || fed.membershipChanged;
    if (!(await condition(wake, IDLE_HEARTBEAT_MS))) {
      fed.cft?.heartbeat();
      fed.bft.heartbeat();
      continue;
    }
    if ((fed.historyFull() || fed.membershipChanged) && fed.queue.length === 0) {
      // A BFT round that returned on the router's own check hands its certificate to the sites
      // (hop 4) from this run's memory: let f+1 of them confirm it before handing over (bounded;
      // only ever set in runs with the patch). New proposals still wake the loop.
      if (fed.bft.finishingRound) await condition(() => !fed.bft.finishingRound || fed.queue.length > 0, FINISH_BEFORE_CAN_MS);
      await condition(() => allHandlersFinished() || fed.queue.length > 0);
      if (fed.queue.length === 0) break;
    }
    if (fed.queue.length === 0) continue;
    await runNextRound(fed);
  }

  // Answer everything still queued, then hand over to the next run (or stop, if superseded).
  if (fed.superseded) {
    const superseded = fed.superseded;
    fed.settle(fed.queue.splice(0), () => ({ error: superseded, type: LEADER_SUPERSEDED }));
    await condition(allHandlersFinished);
    await Promise.all(fed.outbound);
    throw ApplicationFailure.nonRetryable(superseded, LEADER_SUPERSEDED);
  }
  await Promise.all(fed.outbound);
  await continueAsNew<typeof federation>({
    ...input,
    carry: {
      term: fed.cft?.leader.term ?? fed.term,
      cftLog: fed.cft ? fed.cft.committedLog() : (input.carry?.cftLog ?? []),
      // New members, new view: a view's member list is fixed at every site (it decides the primary).
      view: fed.membershipChanged ? fed.bft.view + 1 : fed.bft.view,
      trust: fed.trust,
      state: { ...fed.state, rejected: fed.state.rejected.slice(-REFUSALS_KEPT) },
      rounds: fed.rounds,
      byzantine: fed.byzantine,
      recent: fed.recent,
    },
  });
}
