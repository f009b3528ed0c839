/**
 * State of one PBFT replica (one site) in a fixed view. Plain data: the agent can keep it in
 * memory and rebuild it after a crash from the votes it signed (restoreReplica).
 */
import type { BftCommitted, CommitCertificate, EquivocationProof, SignedRecord, SignedVote } from './bft-types';
import { bftSizes } from './quorum';
import { quorumWait, type QuorumWait } from './quorum-wait';
import type { Signer, Verifier } from './signing';
import type { SiteId } from './types';

export interface ReplicaOptions {
  members: readonly SiteId[];
  /** Fixed for the life of the replica; the primary is members[view mod n] (PBFT §4.1). */
  view: number;
  /** Sequences in flight above the last executed one (PBFT's high watermark H = h + window). */
  window?: number;
  /** Ticks between retransmissions of this site's votes for sequences not yet committed. */
  retransmitTicks?: number;
  /** A site not heard from for this many ticks counts as unreachable in replicaQuorumWait. */
  liveWindowTicks?: number;
}

export interface Slot<T> {
  prePrepare?: SignedVote;
  value?: T;
  prepares: Record<SiteId, SignedVote>;
  commits: Record<SiteId, SignedVote>;
  sentPrepare: boolean;
  sentCommit: boolean;
  committed?: { value: T; certificate: CommitCertificate };
}

export interface ReplicaState<T> {
  self: SiteId;
  members: SiteId[];
  view: number;
  f: number;
  quorum: number;
  window: number;
  retransmitTicks: number;
  liveWindowTicks: number;
  /** The primary's next sequence number. */
  nextSeq: number;
  /** Every sequence up to here is committed and handed out, in order (the low watermark h). */
  executed: number;
  slots: Record<number, Slot<T>>;
  /** Kept so lagging sites can be sent certificates; the agent may trim it to what its log holds. */
  done: Record<number, BftCommitted<T>>;
  /** The first validly signed vote of each site for each `view:seq`: the evidence for equivocation. */
  firstVote: Record<SiteId, Record<string, SignedVote>>;
  byzantine: Record<SiteId, EquivocationProof>;
  lastHeard: Record<SiteId, number>;
  tick: number;
}

/** A replica: pure state plus the injected crypto. */
export interface Replica<T> {
  state: ReplicaState<T>;
  signer: Signer;
  verifier: Verifier;
}

export function primaryOf(members: readonly SiteId[], view: number): SiteId {
  return members[view % members.length] as SiteId;
}

export function createReplica<T>(signer: Signer, verifier: Verifier, o: ReplicaOptions): Replica<T> {
  if (!o.members.includes(signer.siteId)) {
    throw new Error(`site ${signer.siteId} is not a member of this committee (members: ${[...o.members].join(', ')})`);
  }
  if (new Set(o.members).size !== o.members.length) throw new Error(`members must be distinct; got ${o.members.join(', ')}`);
  const { f, quorum } = bftSizes(o.members.length);
  return {
    signer, verifier,
    state: {
      self: signer.siteId, members: [...o.members], view: o.view, f, quorum, window: o.window ?? 64,
      retransmitTicks: o.retransmitTicks ?? 2, liveWindowTicks: o.liveWindowTicks ?? 10, nextSeq: 1, executed: 0,
      slots: {}, done: {}, firstVote: {}, byzantine: {}, lastHeard: {}, tick: 0,
    },
  };
}

/**
 * Rebuilds a replica after a crash from what it persisted: the votes it signed and what it had
 * committed. Remembering its own votes is what keeps an honest site from signing a second digest
 * for the same (view, sequence) after a restart, which would look like (and be) equivocation.
 */
export function restoreReplica<T>(signer: Signer, verifier: Verifier, o: ReplicaOptions, signed: readonly SignedRecord<T>[], committed: readonly BftCommitted<T>[]): Replica<T> {
  const r = createReplica<T>(signer, verifier, o);
  const s = r.state;
  const sorted = [...committed].sort((a, b) => a.seq - b.seq);
  for (const c of sorted) {
    if (c.seq !== s.executed + 1) break; // only a gap-free prefix counts as executed
    s.done[c.seq] = c;
    s.executed = c.seq;
  }
  for (const { vote, value } of signed) {
    if (vote.site !== s.self || vote.view !== s.view) continue;
    (s.firstVote[s.self] ??= {})[`${vote.view}:${vote.seq}`] = vote;
    if (vote.type === 'pre-prepare') s.nextSeq = Math.max(s.nextSeq, vote.seq + 1);
    if (vote.seq <= s.executed) continue;
    const slot = slotAt(s, vote.seq);
    if (vote.type === 'pre-prepare' && value !== undefined) {
      slot.prePrepare = vote;
      slot.value = value;
    } else if (vote.type === 'prepare') {
      slot.prepares[s.self] = vote;
      slot.sentPrepare = true;
    } else if (vote.type === 'commit') {
      slot.commits[s.self] = vote;
      slot.sentCommit = true;
    }
  }
  s.nextSeq = Math.max(s.nextSeq, s.executed + 1);
  return r;
}

export function slotAt<T>(s: ReplicaState<T>, seq: number): Slot<T> {
  return (s.slots[seq] ??= { prepares: {}, commits: {}, sentPrepare: false, sentCommit: false });
}

/** Sites this replica heard a message from lately (itself included) vs the quorum a commit needs. */
export function replicaQuorumWait<T>(s: ReplicaState<T>): QuorumWait {
  return quorumWait(s.members, { ...s.lastHeard, [s.self]: s.tick }, s.tick - s.liveWindowTicks, s.quorum);
}
