/**
 * Messages and proofs of the Byzantine-tolerant (PBFT-style) normal case. Every vote is signed by
 * its site over canonical bytes (bft-votes.ts), so a vote, a certificate or a proof of
 * equivocation can be checked by anyone holding the public keys, not only by the replica that saw it.
 */
import type { Signature } from './signing';
import type { SiteId } from './types';

export const VOTE_TYPES = { prePrepare: 'pre-prepare', prepare: 'prepare', commit: 'commit' } as const;
export type VoteType = (typeof VOTE_TYPES)[keyof typeof VOTE_TYPES];

/** What a site signs: (type, view, sequence, digest, siteId). */
export interface VoteBody {
  type: VoteType;
  view: number;
  seq: number;
  /** digestOf(value), hex sha256 of the value's canonical JSON. */
  digest: string;
  site: SiteId;
}

export interface SignedVote extends VoteBody {
  sig: Signature;
}

/** Proof of commit: a quorum (2f+1 when n = 3f+1) of matching signed commit votes. */
export interface CommitCertificate {
  view: number;
  seq: number;
  digest: string;
  votes: SignedVote[];
}

/** Two validly signed votes by one site, for one (view, sequence), with different digests. */
export interface EquivocationProof {
  site: SiteId;
  view: number;
  seq: number;
  first: SignedVote;
  second: SignedVote;
}

/** Messages between replicas. Votes are authenticated by their signature, not by `from`. */
export type BftMessage<T> =
  | { type: 'pre-prepare'; to: SiteId; vote: SignedVote; value: T }
  | { type: 'prepare'; to: SiteId; vote: SignedVote }
  | { type: 'commit'; to: SiteId; vote: SignedVote }
  /** Catch-up: a self-verifying certificate and its value, for a site that missed the votes. */
  | { type: 'certificate'; to: SiteId; cert: CommitCertificate; value: T }
  /** Unsigned "I have executed up to `executed`": only ever answered with certificates, which verify themselves. */
  | { type: 'status'; to: SiteId; from: SiteId; executed: number };

export interface BftCommitted<T> {
  seq: number;
  value: T;
  digest: string;
  certificate: CommitCertificate;
}

/** A vote this site signed, with the value for its own pre-prepares: persist before sending. */
export interface SignedRecord<T> {
  vote: SignedVote;
  value?: T;
}

export interface Refusal {
  reason: string;
  site?: SiteId;
}

/**
 * What one step produced, in the order the caller must act on it:
 * 1. persist `persist` (the votes this site signed, so after a restart it never signs another
 *    digest for the same view and sequence) and `committed`, fsync;
 * 2. then send `messages`;
 * 3. then apply `committed` (in sequence order, gap-free), report `equivocations`.
 */
export interface BftReady<T> {
  persist: SignedRecord<T>[];
  messages: BftMessage<T>[];
  committed: BftCommitted<T>[];
  equivocations: EquivocationProof[];
  refused: Refusal[];
}

export function emptyBftReady<T>(): BftReady<T> {
  return { persist: [], messages: [], committed: [], equivocations: [], refused: [] };
}
