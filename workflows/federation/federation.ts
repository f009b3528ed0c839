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
 * A thin layer of messages over plain state, as the samples' entity workflows are: updates and
 * signals only enqueue; the main loop alone runs rounds; validators refuse bad input before it
 * enters history; continue-as-new waits for every handler to finish.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { EquivocationProof } from '../../core/consensus/bft-types';
import { applyEntries, emptyCommittedState, type CommittedState, type FederationEntry, workloadRecordProblem } from '../../core/consensus/entries';
import { canonicalJson } from '../../core/consensus/canonical-json';
import { chooseProtocol } from '../../core/consensus/protocol-choice';
import { bftSizes, majority } from '../../core/consensus/quorum';
import type { Protocol, SiteId } from '../../core/consensus/types';
import { SITE_ID_PATTERN, TRUST_LEVELS, type Trust } from '../../core/federation-config';
import { BftDriver } from './bft';
import { CftDriver, LEADER_SUPERSEDED } from './cft';
import { certificateSummary } from './summary';
import { commitResultSignal, commitStatusSignal, committedStateQuery, consensusStatusQuery, joinUpdate, leaveUpdate, MAX_PROPOSALS_PER_UPDATE, membershipQuery, proposeBatchUpdate, proposeSignal, proposeUpdate, type ConsensusStatus, type FederationInput, type JoinInput, type ProposalResult, type ProposeInput, type RoundCertificate } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { FailureType } from '../../core/contracts/failures';

const DEFAULT_MAX_HISTORY = 10_000;
/** Entries per round: keeps each activity's payload (a batch goes to every site) well under Temporal's limits. */
const DEFAULT_MAX_BATCH = 500;
/** Idle time before the federation tells lagging sites the latest commit index. */
const IDLE_HEARTBEAT_MS = 1_000;
/** Request ids remembered for idempotency across runs. */
const RECENT_RESULTS = 500;
/** Updates per run before continuing as new: the server refuses updates past history.maxTotalUpdates (2000 by default). */
const MAX_UPDATES_PER_RUN = 1_500;
const REFUSALS_KEPT = 50;
/** Patch id: BFT rounds end once the router itself has verified 2f+1 commit votes (one hop fewer). */
export const BFT_ROUTER_VERIFIES_PATCH = 'bft-router-verifies-commits-v1';
/**
 * Patch id: a proposal whose request id is already queued or in a round is not queued twice; the
 * second caller waits for the first one's outcome. A migration proposes its placement by update
 * first (the fast path) and, if that takes long, again by signal under the same request id.
 */
export const DEDUPE_PENDING_PATCH = 'federation-dedupe-pending-v1';
/** The longest a run waits, before continuing as new, for f+1 sites to confirm the last BFT round. */
const FINISH_BEFORE_CAN_MS = 10_000;

interface Pending {
  id: string;
  input: ProposeInput;
  protocol: Protocol;
  arrivedAt: number;
  replyTo?: string;
  /** Other workflows that sent the same proposal by signal while it was pending: told the outcome too. */
  alsoReplyTo?: string[];
  /** Update handlers waiting for this proposal's outcome: one if it came by update, more if others joined it. */
  awaiters?: number;
  /** Set for join/leave: runs alone in its round and ends the run (new members, new epoch). */
  membership?: boolean;
}

type Outcome = { result: ProposalResult } | { error: string; type: string };

export async function federation(input: FederationInput): Promise<void> {
  const info = workflowInfo();
  const expectedId = federationWorkflowId(input.name);
  if (info.workflowId !== expectedId) {
    throw ApplicationFailure.nonRetryable(`workflow id '${info.workflowId}' must be '${expectedId}' for federation '${input.name}'`, FailureType.WrongWorkflowId);
  }
  const carry = input.carry;
  if (!carry) checkFounders(input);
  let state: CommittedState =
    carry?.state ??
    applyEntries(
      emptyCommittedState(),
      input.sites.map((s) => ({ kind: 'membership', op: 'join', site: s.id, publicKey: s.publicKey, capacity: s.capacity }) as const),
    );
  const trust: Record<SiteId, Trust> = carry?.trust ?? Object.fromEntries(input.sites.map((s) => [s.id, s.trust]));
  const byzantine: Record<SiteId, EquivocationProof> = carry?.byzantine ?? {};
  const recent: Record<string, ProposalResult> = carry?.recent ?? {};
  const members = Object.keys(state.members).sort();
  const trusted = members.filter((m) => trust[m] === 'trusted');
  let term = (carry?.term ?? 0) + 1;
  let rounds = carry?.rounds ?? 0;
  const maxBatch = input.maxBatchEntries ?? DEFAULT_MAX_BATCH;
  const maxHistory = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY;

  const queue: Pending[] = [];
  /** Settled proposals' outcomes, with how many update handlers have yet to read each. */
  const outcomes = new Map<string, { outcome: Outcome; readers: number }>();
  const refusals: ConsensusStatus['refusals'] = [];
  const outbound: Promise<void>[] = [];
  let membershipChanged = false;
  let superseded: string | undefined;
  const status: ConsensusStatus = { phase: 'idle', status: 'idle', rounds, term, view: carry?.view ?? 0, queued: 0, byzantine: Object.values(byzantine), refusals };

  const tell = (replyTo: string | undefined, signal: () => Promise<void>) => {
    if (!replyTo) return;
    // A requester that has gone away must not stop the federation.
    outbound.push(signal().catch((err) => log.warn('could not answer a proposing workflow', { replyTo, error: String(err) })));
  };
  let inRound: Pending[] = [];
  const setWaiting = (text: string) => {
    const changed = status.status !== text;
    status.phase = text.startsWith('waiting for quorum') ? 'waiting' : 'committing';
    status.status = text;
    if (changed) for (const p of inRound) tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo!).signal(commitStatusSignal, { requestId: p.id, status: text }));
  };

  // Committed CFT entries arrive in log order, including any a previous epoch left uncommitted.
  let rejectedAtIndex = new Map<number, string>();
  const onCftCommitted = (entries: { index: number; kind: string; value?: FederationEntry }[]) => {
    const values = entries.filter((e) => e.kind === 'value');
    const before = state.applied;
    state = applyEntries(state, values.map((e) => e.value as FederationEntry));
    for (const r of state.rejected) if (r.ordinal > before) rejectedAtIndex.set(values[r.ordinal - before - 1]!.index, r.reason);
  };

  const makeCft = (t: number) =>
    new CftDriver({ federation: input.name, leaderId: info.workflowId, term: t, members: trusted, base: carry?.cftLog ?? [], rttMs: input.rttMs, onCommitted: onCftCommitted, onWaiting: setWaiting });
  let cft = trusted.length ? makeCft(term) : undefined;
  // Patch: the router verifies commit votes with the members' keys and returns after hop 3.
  const routerVerifies = patched(BFT_ROUTER_VERIFIES_PATCH);
  const bft = new BftDriver({
    federation: input.name,
    members,
    view: carry?.view ?? 0,
    rttMs: input.rttMs,
    ...(routerVerifies ? { publicKeys: Object.fromEntries(members.map((m) => [m, state.members[m]!.publicKey])) } : {}),
    onWaiting: setWaiting,
    onEquivocation: (proof, reportedBy) => {
      if (byzantine[proof.site]) return;
      byzantine[proof.site] = proof;
      status.byzantine = Object.values(byzantine);
      log.warn('site equivocated: it signed two digests for one sequence', { site: proof.site, seq: proof.seq, reportedBy });
    },
    onRefusal: (site, reason, accused) => {
      refusals.push(accused ? { site, reason, accused } : { site, reason });
      if (refusals.length > REFUSALS_KEPT) refusals.splice(0, refusals.length - REFUSALS_KEPT);
    },
  });

  // ---- messages ----
  const trustOf = (s: SiteId) => trust[s];
  /** Proposals queued or in a round, by request id (the first with each id). */
  const pendingById = new Map<string, Pending>();
  const enqueue = (p: Omit<Pending, 'protocol' | 'arrivedAt'>, protocol?: Protocol) => {
    const q: Pending = { ...p, arrivedAt: Date.now(), protocol: protocol ?? chooseProtocol(touched(p.input), trustOf) };
    queue.push(q);
    if (!pendingById.has(q.id)) pendingById.set(q.id, q);
    status.queued = queue.length;
  };
  const awaitOutcome = async (id: string): Promise<ProposalResult> => {
    await condition(() => outcomes.has(id));
    const held = outcomes.get(id)!;
    if (--held.readers <= 0) outcomes.delete(id);
    const o = held.outcome;
    if ('error' in o) throw ApplicationFailure.nonRetryable(o.error, o.type);
    return o.result;
  };
  let requests = 0;
  let updates = 0;
  /** The proposal with this request id still waiting for its round or in it, if one is (and the patch applies). */
  const pendingWithId = (id: string): Pending | undefined => {
    const p = pendingById.get(id);
    return p && patched(DEDUPE_PENDING_PATCH) ? p : undefined;
  };
  /** An update handler joins the outcome of a pending proposal with its id (and the same entries). */
  const joinPending = (p: Pending, input: ProposeInput): Promise<ProposalResult> => {
    const clash = sameProposal(p.input, input);
    if (clash) throw ApplicationFailure.nonRetryable(clash, FailureType.RequestIdReused);
    p.awaiters = (p.awaiters ?? 0) + 1;
    return awaitOutcome(p.id);
  };
  const fresh = (requestId: string | undefined) => requestId ?? `${info.workflowId}/${info.runId}/${++requests}`;

  setHandler(
    proposeUpdate,
    async (p: ProposeInput) => {
      updates++;
      const id = fresh(p.requestId);
      if (recent[id]) return recent[id]!;
      const dup = p.requestId === undefined ? undefined : pendingWithId(id);
      if (dup) return joinPending(dup, p);
      enqueue({ id, input: p, awaiters: 1 });
      return awaitOutcome(id);
    },
    { validator: (p: ProposeInput) => validateProposal(p, state, trust, superseded) },
  );
  setHandler(
    proposeBatchUpdate,
    async (ps: ProposeInput[]) => {
      updates++;
      return Promise.all(
        ps.map((p) => {
          const id = fresh(p.requestId);
          if (recent[id]) return recent[id]!;
          const dup = p.requestId === undefined ? undefined : pendingWithId(id);
          if (dup) return joinPending(dup, p);
          enqueue({ id, input: p, awaiters: 1 });
          return awaitOutcome(id);
        }),
      );
    },
    {
      validator: (ps: ProposeInput[]) => {
        if (!Array.isArray(ps) || ps.length === 0 || ps.length > MAX_PROPOSALS_PER_UPDATE) {
          throw new Error(`proposeBatch takes 1 to ${MAX_PROPOSALS_PER_UPDATE} proposals; got ${Array.isArray(ps) ? ps.length : typeof ps}`);
        }
        ps.forEach((p, i) => {
          try {
            validateProposal(p, state, trust, superseded);
          } catch (err) {
            throw new Error(`proposals[${i}]: ${(err as Error).message}`);
          }
        });
      },
    },
  );
  setHandler(proposeSignal, (p) => {
    // Signals have no validator: a bad proposal is answered with the error instead.
    if (recent[p.requestId]) return tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitResultSignal, { requestId: p.requestId, result: recent[p.requestId] }));
    const dup = pendingWithId(p.requestId);
    if (dup) {
      // Already queued (say by the same caller's update): answer this sender too, once, when it
      // settles, and tell it now what its round is waiting for, if it is in one.
      const clash = sameProposal(dup.input, p);
      if (clash) return tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitResultSignal, { requestId: p.requestId, error: clash }));
      if (!dup.replyTo) dup.replyTo = p.replyTo;
      else if (dup.replyTo !== p.replyTo && !(dup.alsoReplyTo ??= []).includes(p.replyTo)) dup.alsoReplyTo.push(p.replyTo);
      if (inRound.includes(dup)) tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitStatusSignal, { requestId: p.requestId, status: status.status }));
      return;
    }
    try {
      validateProposal(p, state, trust, superseded);
      enqueue({ id: p.requestId, input: p, replyTo: p.replyTo });
    } catch (err) {
      tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitResultSignal, { requestId: p.requestId, error: (err as Error).message }));
    }
  });
  setHandler(
    joinUpdate,
    async (j: JoinInput) => {
      updates++;
      const id = fresh(undefined);
      const entry: FederationEntry = { kind: 'membership', op: 'join', site: j.site, publicKey: j.publicKey, capacity: j.capacity };
      // The joining site's trust decides: an untrusted newcomer is admitted by a Byzantine quorum.
      enqueue({ id, input: { entries: [entry] }, membership: true }, chooseProtocol([j.site, ...members], (s) => (s === j.site ? j.trust : trust[s])));
      const result = await awaitOutcome(id);
      if (!result.rejected.length) trust[j.site] = j.trust;
      return result;
    },
    { validator: (j: JoinInput) => validateJoin(j, state, superseded) },
  );
  setHandler(
    leaveUpdate,
    async ({ site }: { site: SiteId }) => {
      updates++;
      const id = fresh(undefined);
      enqueue({ id, input: { entries: [{ kind: 'membership', op: 'leave', site }] }, membership: true });
      return awaitOutcome(id);
    },
    { validator: ({ site }: { site: SiteId }) => validateLeave(site, state, superseded) },
  );
  setHandler(committedStateQuery, () => state);
  setHandler(membershipQuery, () => ({
    members: Object.entries(state.members)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, m]) => ({ id, trust: trust[id] ?? 'untrusted', ...m })),
  }));
  setHandler(consensusStatusQuery, () => ({ ...status, view: bft.view, term: cft?.leader.term ?? term, queued: queue.length, rounds }));

  // ---- rounds ----
  const settle = (batch: Pending[], outcome: (p: Pending) => Outcome) => {
    for (const p of batch) {
      if (pendingById.get(p.id) === p) pendingById.delete(p.id);
      const o = outcome(p);
      if ('result' in o) {
        recent[p.id] = o.result;
        const keys = Object.keys(recent);
        if (keys.length > RECENT_RESULTS) delete recent[keys[0]!];
      }
      if (p.replyTo) tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo!).signal(commitResultSignal, { requestId: p.id, ...o }));
      for (const also of p.alsoReplyTo ?? []) tell(also, () => getExternalWorkflowHandle(also).signal(commitResultSignal, { requestId: p.id, ...o }));
      // One read per update handler waiting for it (join and leave handlers wait without counting).
      if (!p.replyTo || p.awaiters) outcomes.set(p.id, { outcome: o, readers: p.awaiters ?? 1 });
    }
  };

  async function runRound(batch: Pending[]): Promise<void> {
    const protocol = batch[0]!.protocol;
    const entries = batch.flatMap((p) => p.input.entries);
    inRound = batch;
    status.phase = 'committing';
    status.status = `committing ${entries.length} entries (${protocol})`;
    status.protocol = protocol;
    let certificate: RoundCertificate;
    let positions: (string | undefined)[]; // rejection reason per entry of the batch
    if (protocol === 'cft') {
      if (!cft) throw new Error(`no trusted sites to run a CFT round (members: ${members.join(', ')})`);
      rejectedAtIndex = new Map();
      const cert = await cft.commit(entries);
      certificate = cert;
      positions = entries.map((_, i) => rejectedAtIndex.get(cert.firstIndex + i));
    } else {
      const ordinal = state.applied + 1;
      const cert = await bft.commit({ federation: input.name, ordinal, entries });
      certificate = { protocol: 'bft', certificate: cert.certificate, members: cert.members };
      const before = state.applied;
      state = applyEntries(state, entries);
      positions = entries.map((_, i) => state.rejected.find((r) => r.ordinal === before + i + 1)?.reason);
    }
    rounds++;
    const n = protocol === 'cft' ? trusted.length : members.length;
    const quorum = {
      needed: protocol === 'cft' ? majority(n) : bftSizes(n).quorum,
      total: n,
      got: certificate.protocol === 'cft' ? certificate.ackedBy.length : certificate.certificate.votes.length,
    };
    const summary = certificateSummary(certificate);
    let offset = 0;
    settle(batch, (p) => {
      const rejected = p.input.entries.flatMap((_, i) => (positions[offset + i] ? [{ position: i, reason: positions[offset + i]! }] : []));
      offset += p.input.entries.length;
      return { result: { requestId: p.id, protocol, round: rounds, certificate, summary, quorum, waitedMs: Date.now() - p.arrivedAt, rejected } };
    });
    if (batch.some((p) => p.membership)) membershipChanged = true;
  }

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxHistory || updates >= MAX_UPDATES_PER_RUN;
  while (!superseded) {
    status.phase = 'idle';
    status.status = 'idle';
    inRound = [];
    const wake = () => queue.length > 0 || historyFull() || membershipChanged;
    if (!(await condition(wake, IDLE_HEARTBEAT_MS))) {
      cft?.heartbeat();
      bft.heartbeat();
      continue;
    }
    if ((historyFull() || membershipChanged) && queue.length === 0) {
      // A BFT round that returned on the router's own check hands its certificate to the sites
      // (hop 4) from this run's memory: let f+1 of them confirm it before handing over (bounded;
      // only ever set in runs with the patch). New proposals still wake the loop.
      if (bft.finishingRound) await condition(() => !bft.finishingRound || queue.length > 0, FINISH_BEFORE_CAN_MS);
      await condition(() => allHandlersFinished() || queue.length > 0);
      if (queue.length === 0) break;
    }
    if (queue.length === 0) continue;
    const batch = takeBatch(queue, maxBatch);
    status.queued = queue.length;
    try {
      await runRound(batch);
    } catch (err) {
      const failure = err instanceof ApplicationFailure ? err : undefined;
      if (failure?.type === LEADER_SUPERSEDED) {
        if (!carry && rounds === 0 && cft && cft.leader.deposedBy && cft.leader.term === term && !cft.leader.log.length) {
          // A fresh start (no previous run handed us a term) after a reset: take a term above the
          // sites' and campaign again. Only here: a run that has led never bids higher, or two runs would duel.
          term = cft.leader.deposedBy.term + 1;
          cft = makeCft(term);
          queue.unshift(...batch);
          continue;
        }
        superseded = failure.message;
        status.phase = 'superseded';
        status.status = failure.message;
      }
      const error = (err as Error).message;
      settle(batch, () => ({ error, type: failure?.type ?? 'FederationRoundFailed' }));
    }
  }

  // Answer everything still queued, then hand over to the next run (or stop, if superseded).
  if (superseded) {
    settle(queue.splice(0), () => ({ error: superseded!, type: LEADER_SUPERSEDED }));
    await condition(allHandlersFinished);
    await Promise.all(outbound);
    throw ApplicationFailure.nonRetryable(superseded, LEADER_SUPERSEDED);
  }
  await Promise.all(outbound);
  await continueAsNew<typeof federation>({
    ...input,
    carry: {
      term: cft?.leader.term ?? term,
      cftLog: cft ? cft.committedLog() : (carry?.cftLog ?? []),
      // New members, new view: a view's member list is fixed at every site (it decides the primary).
      view: membershipChanged ? bft.view + 1 : bft.view,
      trust,
      state: { ...state, rejected: state.rejected.slice(-REFUSALS_KEPT) },
      rounds,
      byzantine,
      recent,
    },
  });
}

/**
 * Why `b` may not join the pending proposal `a` that has its request id: undefined when both name
 * the same entries and touch the same sites (compared by content, whatever the key order).
 */
function sameProposal(a: ProposeInput, b: ProposeInput): string | undefined {
  const canon = (p: ProposeInput) => canonicalJson({ entries: p.entries, touches: [...(p.touches ?? [])].sort() });
  if (canon(a) === canon(b)) return undefined;
  return `request id '${b.requestId}' is already queued with other entries (${canonicalJson(a.entries)}); a retry must resend the same entries, a new change needs a new request id`;
}

/** One protocol per round: the head proposal's, with every queued proposal of that protocol behind it, in order. */
function takeBatch(queue: Pending[], maxEntries: number): Pending[] {
  const head = queue.shift()!;
  const batch = [head];
  if (head.membership) return batch;
  let entries = head.input.entries.length;
  while (queue.length && queue[0]!.protocol === head.protocol && !queue[0]!.membership && entries + queue[0]!.input.entries.length <= maxEntries) {
    const p = queue.shift()!;
    entries += p.input.entries.length;
    batch.push(p);
  }
  return batch;
}

function touched(p: ProposeInput): SiteId[] {
  const sites = new Set<SiteId>(p.touches ?? []);
  for (const e of p.entries) sites.add(e.site);
  return [...sites].sort();
}

function checkFounders(input: FederationInput): void {
  if (!Array.isArray(input.sites) || input.sites.length === 0) {
    throw ApplicationFailure.nonRetryable(`federation ${input.name} needs at least one founding site; got none`, FailureType.InvalidFederation);
  }
  const seen = new Set<string>();
  for (const s of input.sites) {
    const problem = siteProblem(s.id) ?? (seen.has(s.id) ? `site ${s.id} is listed twice` : undefined) ?? trustProblem(s.id, s.trust) ?? keyProblem(s.id, s.publicKey);
    if (problem) throw ApplicationFailure.nonRetryable(`federation ${input.name}: ${problem}`, FailureType.InvalidFederation);
    seen.add(s.id);
  }
}

export function validateProposal(p: ProposeInput, state: CommittedState, trust: Record<SiteId, Trust>, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  if (!p || !Array.isArray(p.entries) || p.entries.length === 0) throw new Error('a proposal needs at least one entry in `entries`; got none');
  const members = Object.keys(state.members).sort();
  const known = (site: unknown, what: string) => {
    if (typeof site !== 'string' || !state.members[site]) {
      throw new Error(`${what}: site '${String(site)}' is not a member of the federation (members: ${members.join(', ') || 'none'})`);
    }
  };
  p.entries.forEach((e, i) => {
    const at = `entries[${i}]`;
    if (!e || typeof e !== 'object') throw new Error(`${at} is not an entry object`);
    if (e.kind === 'placement' || e.kind === 'reservation') {
      if (typeof e.workload !== 'string' || !e.workload) throw new Error(`${at} (${e.kind}) needs a workload id; got '${String(e.workload)}'`);
      known(e.site, `${at} (${e.kind} of ${e.workload})`);
      const op: unknown = e.kind === 'reservation' ? e.op : undefined;
      if (e.kind === 'reservation' && op !== 'reserve' && op !== 'release') throw new Error(`${at}: reservation op must be 'reserve' or 'release'; got '${String(op)}'`);
      const problem = e.kind === 'placement' && e.record !== undefined ? workloadRecordProblem(e.record) : undefined;
      if (problem) throw new Error(`${at} (placement of ${e.workload}): ${problem}`);
    } else if (e.kind === 'workload') {
      if (typeof e.workload !== 'string' || !e.workload) throw new Error(`${at} (workload) needs a workload id; got '${String(e.workload)}'`);
      known(e.site, `${at} (workload ${e.workload})`);
      const op: unknown = e.op;
      if (op !== 'add' && op !== 'remove') throw new Error(`${at}: workload op must be 'add' or 'remove'; got '${String(op)}'`);
      const problem = e.op === 'add' ? workloadRecordProblem(e.record) : undefined;
      if (problem) throw new Error(`${at} (workload ${e.workload}): ${problem}`);
    } else if (e.kind === 'membership') {
      throw new Error(`${at}: membership changes go through the join and leave updates, not propose`);
    } else {
      throw new Error(`${at}: kind must be 'placement', 'reservation' or 'workload'; got '${String((e as { kind?: unknown }).kind)}'`);
    }
  });
  for (const s of p.touches ?? []) known(s, 'touches');
  for (const s of touched(p)) if (!trust[s]) throw new Error(`site ${s} has no trust level in this federation`);
}

export function validateJoin(j: JoinInput, state: CommittedState, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  const problem =
    siteProblem(j?.site) ??
    (state.members[j.site] ? `site ${j.site} is already a member; a site leaves before it joins again` : undefined) ??
    trustProblem(j.site, j.trust) ??
    (!Number.isSafeInteger(j.capacity) || j.capacity < 0 ? `site ${j.site} joins with capacity ${j.capacity}; capacity is a whole number of instances ≥ 0` : undefined) ??
    keyProblem(j.site, j.publicKey);
  if (problem) throw new Error(`cannot join: ${problem}`);
}

export function validateLeave(site: SiteId, state: CommittedState, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  const members = Object.keys(state.members).sort();
  if (!state.members[site]) throw new Error(`cannot leave: site '${site}' is not a member (members: ${members.join(', ') || 'none'})`);
  if (members.length === 1) throw new Error(`cannot leave: ${site} is the last member; a federation needs at least one site`);
  const held = Object.entries(state.placements).filter(([, s]) => s === site).map(([w]) => w);
  const reserved = Object.values(state.reservations).filter((r) => r.site === site).map((r) => r.workload);
  if (held.length || reserved.length) throw new Error(`cannot leave: ${site} still runs or reserves workloads (${[...held, ...reserved].sort().join(', ')}); move or release them first`);
}

function siteProblem(site: unknown): string | undefined {
  if (typeof site !== 'string' || !SITE_ID_PATTERN.test(site)) return `site id '${String(site)}' must look like <kind>:<name>, e.g. dc:paris`;
  return undefined;
}

function trustProblem(site: string, t: unknown): string | undefined {
  return (TRUST_LEVELS as readonly unknown[]).includes(t) ? undefined : `site ${site} has trust '${String(t)}'; expected ${TRUST_LEVELS.join(' or ')}`;
}

function keyProblem(site: string, key: unknown): string | undefined {
  // 44 bytes: the 12-byte SPKI header of an Ed25519 key and its 32-byte public key, base64-encoded.
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length !== 60) {
    return `site ${site} needs publicKey: its Ed25519 public key as base64 SPKI DER (60 characters); got '${String(key).slice(0, 80)}'`;
  }
  return undefined;
}
