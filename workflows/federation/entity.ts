/**
 * The state of one federation run, as a plain class (the shape of the samples' ClusterManager):
 * the committed state, the queue of pending proposals, the recent results, the status the
 * queries read, and the CFT and BFT drivers. Message handlers (federation.ts) call its methods;
 * they only validate and enqueue, and wait for their proposal's outcome. Rounds (rounds.ts) are
 * run by the main loop alone, one at a time, so state changes never interleave.
 */
import { ApplicationFailure, condition, getExternalWorkflowHandle, log, patched, workflowInfo } from '@temporalio/workflow';
import type { EquivocationProof } from '../../core/consensus/bft-types';
import { applyEntries, emptyCommittedState, type CommittedState, type FederationEntry } from '../../core/consensus/entries';
import { chooseProtocol } from '../../core/consensus/protocol-choice';
import type { Protocol, SiteId } from '../../core/consensus/types';
import type { Trust } from '../../core/federation-config';
import { requestIdClash, touchedSites, validateJoin, validateLeave, validateProposal, validateProposeBatch } from '../../core/federation/validators';
import { commitResultSignal, commitStatusSignal, type ConsensusStatus, type FederationInput, type JoinInput, type Membership, type ProposalResult, type ProposeFromWorkflow, type ProposeInput } from '../../core/contracts/federation';
import { FailureType } from '../../core/contracts/failures';
import { BftDriver } from './bft';
import { CftDriver } from './cft';

/** Entries per round: keeps each activity's payload (a batch goes to every site) well under Temporal's limits. */
const DEFAULT_MAX_BATCH = 500;
const DEFAULT_MAX_HISTORY = 10_000;
/** Request ids remembered for idempotency across runs. */
const RECENT_RESULTS = 500;
/** Updates per run before continuing as new: the server refuses updates past history.maxTotalUpdates (2000 by default). */
const MAX_UPDATES_PER_RUN = 1_500;
export const REFUSALS_KEPT = 50;
/** Patch id: BFT rounds end once the router itself has verified 2f+1 commit votes (one hop fewer). */
export const BFT_ROUTER_VERIFIES_PATCH = 'bft-router-verifies-commits-v1';
/**
 * Patch id: a proposal whose request id is already queued or in a round is not queued twice; the
 * second caller waits for the first one's outcome. A migration proposes its placement by update
 * first (the fast path) and, if that takes long, again by signal under the same request id.
 */
export const DEDUPE_PENDING_PATCH = 'federation-dedupe-pending-v1';

export interface Pending {
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

export type Outcome = { result: ProposalResult } | { error: string; type: string };

export class FederationEntity {
  state: CommittedState;
  readonly trust: Record<SiteId, Trust>;
  readonly byzantine: Record<SiteId, EquivocationProof>;
  readonly recent: Record<string, ProposalResult>;
  readonly members: SiteId[];
  readonly trusted: SiteId[];
  term: number;
  rounds: number;
  readonly maxBatch: number;
  readonly queue: Pending[] = [];
  readonly refusals: ConsensusStatus['refusals'] = [];
  /** Signals to other workflows still on their way: awaited before the run ends. */
  readonly outbound: Promise<void>[] = [];
  membershipChanged = false;
  superseded?: string;
  readonly status: ConsensusStatus;
  /** The proposals of the round running now. */
  inRound: Pending[] = [];
  /** CFT log index → why its entry was rejected, for the round running now. */
  rejectedAtIndex = new Map<number, string>();
  cft?: CftDriver;
  readonly bft: BftDriver;
  /** Settled proposals' outcomes, with how many update handlers have yet to read each. */
  private readonly outcomes = new Map<string, { outcome: Outcome; readers: number }>();
  /** Proposals queued or in a round, by request id (the first with each id). */
  private readonly pendingById = new Map<string, Pending>();
  private requests = 0;
  private updates = 0;
  private readonly maxHistory: number;

  constructor(readonly input: FederationInput) {
    const carry = input.carry;
    this.state = carry?.state ?? applyEntries(emptyCommittedState(), input.sites.map((s) => ({ kind: 'membership', op: 'join', site: s.id, publicKey: s.publicKey, capacity: s.capacity }) as const));
    this.trust = carry?.trust ?? Object.fromEntries(input.sites.map((s) => [s.id, s.trust]));
    this.byzantine = carry?.byzantine ?? {};
    this.recent = carry?.recent ?? {};
    this.members = Object.keys(this.state.members).sort();
    this.trusted = this.members.filter((m) => this.trust[m] === 'trusted');
    this.term = (carry?.term ?? 0) + 1;
    this.rounds = carry?.rounds ?? 0;
    this.maxBatch = input.maxBatchEntries ?? DEFAULT_MAX_BATCH;
    this.maxHistory = input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY;
    this.status = { phase: 'idle', status: 'idle', rounds: this.rounds, term: this.term, view: carry?.view ?? 0, queued: 0, byzantine: Object.values(this.byzantine), refusals: this.refusals };
    // Order matters for replay: the CFT leader's first vote requests go out before the patch marker.
    this.cft = this.trusted.length ? this.makeCft(this.term) : undefined;
    // Patch: the router verifies commit votes with the members' keys and returns after hop 3.
    const routerVerifies = patched(BFT_ROUTER_VERIFIES_PATCH);
    this.bft = new BftDriver({
      federation: input.name, members: this.members, view: carry?.view ?? 0, rttMs: input.rttMs,
      ...(routerVerifies ? { publicKeys: Object.fromEntries(this.members.map((m) => [m, this.state.members[m]!.publicKey])) } : {}),
      onWaiting: (text) => this.setWaiting(text),
      onEquivocation: (proof, reportedBy) => this.recordEquivocation(proof, reportedBy),
      onRefusal: (site, reason, accused) => {
        this.refusals.push(accused ? { site, reason, accused } : { site, reason });
        if (this.refusals.length > REFUSALS_KEPT) this.refusals.splice(0, this.refusals.length - REFUSALS_KEPT);
      },
    });
  }

  /** A CFT leader for term `t` over the trusted sites (a fresh run may need a second one, above the sites' term). */
  makeCft(t: number): CftDriver {
    return new CftDriver({
      federation: this.input.name, leaderId: workflowInfo().workflowId, term: t, members: this.trusted, base: this.input.carry?.cftLog ?? [], rttMs: this.input.rttMs,
      onCommitted: (entries) => this.onCftCommitted(entries),
      onWaiting: (text) => this.setWaiting(text),
    });
  }

  // ---- messages: validators (pure, in core/federation) and handlers that only enqueue ----

  validateProposal(p: ProposeInput): void {
    validateProposal(p, this.state, this.trust, this.superseded);
  }
  validateProposeBatch(ps: ProposeInput[]): void {
    validateProposeBatch(ps, this.state, this.trust, this.superseded);
  }
  validateJoin(j: JoinInput): void {
    validateJoin(j, this.state, this.superseded);
  }
  validateLeave(site: SiteId): void {
    validateLeave(site, this.state, this.superseded);
  }

  /** One proposal by update: answered from recent results, joined to a pending one with its id, or queued. */
  async propose(p: ProposeInput): Promise<ProposalResult> {
    this.updates++;
    return this.proposeOne(p);
  }

  async proposeBatch(ps: ProposeInput[]): Promise<ProposalResult[]> {
    this.updates++;
    return Promise.all(ps.map((p) => this.proposeOne(p)));
  }

  /** A proposal by signal from another workflow, answered by signal (signals have no validator). */
  proposeFromWorkflow(p: ProposeFromWorkflow): void {
    const answer = (reply: { result?: ProposalResult; error?: string }) =>
      this.tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitResultSignal, { requestId: p.requestId, ...reply }));
    if (this.recent[p.requestId]) return answer({ result: this.recent[p.requestId] });
    const dup = this.pendingWithId(p.requestId);
    if (dup) {
      // Already queued (say by the same caller's update): answer this sender too, once, when it
      // settles, and tell it now what its round is waiting for, if it is in one.
      const clash = requestIdClash(dup.input, p);
      if (clash) return answer({ error: clash });
      if (!dup.replyTo) dup.replyTo = p.replyTo;
      else if (dup.replyTo !== p.replyTo && !(dup.alsoReplyTo ??= []).includes(p.replyTo)) dup.alsoReplyTo.push(p.replyTo);
      if (this.inRound.includes(dup)) this.tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo).signal(commitStatusSignal, { requestId: p.requestId, status: this.status.status }));
      return;
    }
    try {
      this.validateProposal(p);
      this.enqueue({ id: p.requestId, input: p, replyTo: p.replyTo });
    } catch (err) {
      answer({ error: (err as Error).message });
    }
  }

  async join(j: JoinInput): Promise<ProposalResult> {
    this.updates++;
    const id = this.fresh(undefined);
    const entry: FederationEntry = { kind: 'membership', op: 'join', site: j.site, publicKey: j.publicKey, capacity: j.capacity };
    // The joining site's trust decides: an untrusted newcomer is admitted by a Byzantine quorum.
    this.enqueue({ id, input: { entries: [entry] }, membership: true }, chooseProtocol([j.site, ...this.members], (s) => (s === j.site ? j.trust : this.trust[s])));
    const result = await this.awaitOutcome(id);
    if (!result.rejected.length) this.trust[j.site] = j.trust;
    return result;
  }

  async leave(site: SiteId): Promise<ProposalResult> {
    this.updates++;
    const id = this.fresh(undefined);
    this.enqueue({ id, input: { entries: [{ kind: 'membership', op: 'leave', site }] }, membership: true });
    return this.awaitOutcome(id);
  }

  membership(): Membership {
    return {
      members: Object.entries(this.state.members)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([id, m]) => ({ id, trust: this.trust[id] ?? 'untrusted', ...m })),
    };
  }

  consensusStatus(): ConsensusStatus {
    return { ...this.status, view: this.bft.view, term: this.cft?.leader.term ?? this.term, queued: this.queue.length, rounds: this.rounds };
  }

  /** Time to hand over to a new run: the history is long, the server suggests it, or updates near the server's cap. */
  historyFull(): boolean {
    return workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > this.maxHistory || this.updates >= MAX_UPDATES_PER_RUN;
  }

  // ---- outcomes ----

  /** Answers every proposal of `batch`: the recent results, signal senders, and update handlers waiting. */
  settle(batch: Pending[], outcome: (p: Pending) => Outcome): void {
    for (const p of batch) {
      if (this.pendingById.get(p.id) === p) this.pendingById.delete(p.id);
      const o = outcome(p);
      if ('result' in o) {
        this.recent[p.id] = o.result;
        const keys = Object.keys(this.recent);
        if (keys.length > RECENT_RESULTS) delete this.recent[keys[0]!];
      }
      if (p.replyTo) this.tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo!).signal(commitResultSignal, { requestId: p.id, ...o }));
      for (const also of p.alsoReplyTo ?? []) this.tell(also, () => getExternalWorkflowHandle(also).signal(commitResultSignal, { requestId: p.id, ...o }));
      // One read per update handler waiting for it (join and leave handlers wait without counting).
      if (!p.replyTo || p.awaiters) this.outcomes.set(p.id, { outcome: o, readers: p.awaiters ?? 1 });
    }
  }

  /** The round's status changed: the queries show it, and every signal sender in the round is told. */
  setWaiting(text: string): void {
    const changed = this.status.status !== text;
    this.status.phase = text.startsWith('waiting for quorum') ? 'waiting' : 'committing';
    this.status.status = text;
    if (changed) for (const p of this.inRound) this.tell(p.replyTo, () => getExternalWorkflowHandle(p.replyTo!).signal(commitStatusSignal, { requestId: p.id, status: text }));
  }

  private proposeOne(p: ProposeInput): ProposalResult | Promise<ProposalResult> {
    const id = this.fresh(p.requestId);
    if (this.recent[id]) return this.recent[id]!;
    const dup = p.requestId === undefined ? undefined : this.pendingWithId(id);
    if (dup) return this.joinPending(dup, p);
    this.enqueue({ id, input: p, awaiters: 1 });
    return this.awaitOutcome(id);
  }

  private enqueue(p: Omit<Pending, 'protocol' | 'arrivedAt'>, protocol?: Protocol): void {
    const q: Pending = { ...p, arrivedAt: Date.now(), protocol: protocol ?? chooseProtocol(touchedSites(p.input), (s) => this.trust[s]) };
    this.queue.push(q);
    if (!this.pendingById.has(q.id)) this.pendingById.set(q.id, q);
    this.status.queued = this.queue.length;
  }

  private async awaitOutcome(id: string): Promise<ProposalResult> {
    await condition(() => this.outcomes.has(id));
    const held = this.outcomes.get(id)!;
    if (--held.readers <= 0) this.outcomes.delete(id);
    const o = held.outcome;
    if ('error' in o) throw ApplicationFailure.nonRetryable(o.error, o.type);
    return o.result;
  }

  /** The proposal with this request id still waiting for its round or in it, if one is (and the patch applies). */
  private pendingWithId(id: string): Pending | undefined {
    const p = this.pendingById.get(id);
    // patched() only when there is a pending proposal: where the marker lands in history matters for replay.
    return p && patched(DEDUPE_PENDING_PATCH) ? p : undefined;
  }

  /** An update handler joins the outcome of a pending proposal with its id (and the same entries). */
  private joinPending(p: Pending, input: ProposeInput): Promise<ProposalResult> {
    const clash = requestIdClash(p.input, input);
    if (clash) throw ApplicationFailure.nonRetryable(clash, FailureType.RequestIdReused);
    p.awaiters = (p.awaiters ?? 0) + 1;
    return this.awaitOutcome(p.id);
  }

  private fresh(requestId: string | undefined): string {
    const info = workflowInfo();
    return requestId ?? `${info.workflowId}/${info.runId}/${++this.requests}`;
  }

  private tell(replyTo: string | undefined, signal: () => Promise<void>): void {
    if (!replyTo) return;
    // A requester that has gone away must not stop the federation.
    this.outbound.push(signal().catch((err) => log.warn('could not answer a proposing workflow', { replyTo, error: String(err) })));
  }

  private recordEquivocation(proof: EquivocationProof, reportedBy: SiteId): void {
    if (this.byzantine[proof.site]) return;
    this.byzantine[proof.site] = proof;
    this.status.byzantine = Object.values(this.byzantine);
    log.warn('site equivocated: it signed two digests for one sequence', { site: proof.site, seq: proof.seq, reportedBy });
  }

  // Committed CFT entries arrive in log order, including any a previous epoch left uncommitted.
  private onCftCommitted(entries: { index: number; kind: string; value?: FederationEntry }[]): void {
    const values = entries.filter((e) => e.kind === 'value');
    const before = this.state.applied;
    this.state = applyEntries(this.state, values.map((e) => e.value as FederationEntry));
    for (const r of this.state.rejected) if (r.ordinal > before) this.rejectedAtIndex.set(values[r.ordinal - before - 1]!.index, r.reason);
  }
}
