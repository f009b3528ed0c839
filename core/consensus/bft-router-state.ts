/**
 * State of the BFT router: the workflow that carries PBFT votes between the sites and counts them
 * (bft-router.ts steps it). Plain data plus an optional verifier, like a Replica: the workflow
 * keeps it in memory, tests drive it over the in-memory network.
 *
 * The router also keeps the per-site delivery accounting (how many deliveries are in flight, when
 * a failed site may be tried again, when each site last answered), so that what it sends, and in
 * which order, is decided here and not in the I/O shell. Time is whatever the caller counts in
 * (`now` on every event; the workflow passes ms, tests pass logical ticks): the router never reads
 * a clock.
 */
import { primaryOf } from './bft-replica-state';
import type { BftMessage, EquivocationProof, Refusal, SignedVote } from './bft-types';
import { bftSizes } from './quorum';
import type { Verifier } from './signing';
import type { SiteId } from './types';

export interface RouterOptions {
  /** In the order every site uses: it fixes each view's primary (members[view mod n]). */
  members: readonly SiteId[];
  view: number;
  /** Time between a waiting round's retransmissions; also a failed site's back-off. */
  tickLength: number;
  /** A site not heard from within this long counts as unreachable in routerQuorumWait. */
  liveWindow: number;
  /** Deliveries in flight per site (so a dead site holds that many, not one per round). */
  maxInFlight: number;
}

export interface RouterRound<T> {
  batch: T;
  digest: string;
  view: number;
  primary: SiteId;
  proposed: boolean;
  /** The primary's propose failed before any pre-prepare: the round moves to another view. */
  abandoned: boolean;
  seq?: number;
  prePrepare?: SignedVote;
  /** Every distinct prepare vote seen for this sequence, matching or not: honest sites need to see conflicting ones to prove equivocation. */
  prepareVotes: SignedVote[];
  /** Sites that signed a prepare (so hold the pre-prepare), and those whose prepare matches the digest. */
  ppAcked: Set<SiteId>;
  matching: Set<SiteId>;
  commits: Record<SiteId, SignedVote>;
  /** Sites whose commit vote was found forged: left out of the certificate. */
  distrusted: Set<SiteId>;
  certVotes?: SignedVote[];
  confirmed: Set<SiteId>;
  /** The stage last delivered to each site, so a stage goes out once per site until a retransmit. */
  delivered: Record<SiteId, number>;
}

export interface RouterState<T> {
  members: SiteId[];
  view: number;
  f: number;
  quorum: number;
  tickLength: number;
  liveWindow: number;
  maxInFlight: number;
  round?: RouterRound<T>;
  /** Messages waiting for a site outside the current stage: catch-up, hop 4 of a returned round, equivocation evidence. */
  forward: Map<SiteId, BftMessage<T>[]>;
  /** Per site, how far it has executed in the current view (from its replies). */
  executed: Record<SiteId, number>;
  /** The first vote of each site per `site|type|view|seq`, to spot a site that signs two digests. */
  firstVotes: Map<string, SignedVote>;
  witnessed: Set<string>;
  /** A round done on the router's own check whose sites are still being told (hop 4), until f+1 confirm. */
  finishing?: RouterRound<T>;
  /** Rounds whose hop 4 went out after they returned (the last few): a late honest commit vote for one is not a replay. */
  finished: RouterRound<T>[];
  busy: Record<SiteId, number>;
  retryAt: Record<SiteId, number>;
  lastHeard: Record<SiteId, number>;
  /** Sites whose last delivery failed, since when. */
  failing: Record<SiteId, number>;
}

/** The router: plain state, plus the members' keys when it verifies commit votes itself. */
export interface Router<T> {
  state: RouterState<T>;
  verifier?: Verifier;
}

/** What goes to one site in one call: the batch to propose (primary only) and the votes it lacks. */
export interface Delivery<T> {
  site: SiteId;
  view: number;
  /** The sequence the round had when this was sent (undefined: before the pre-prepare). */
  forSeq?: number;
  propose?: T;
  messages: BftMessage<T>[];
}

/** A site's answer to a delivery (the consensus activity's result), with the delivery's forSeq. */
export interface RouterReply<T> {
  view: number;
  messages: BftMessage<T>[];
  committed: { seq: number; digest: string }[];
  executed: number;
  equivocations: EquivocationProof[];
  refused: Refusal[];
  forSeq?: number;
}

/** Something for the operator: an equivocation a site proved, or a refusal (by a site or by the router). */
export type RouterReport =
  | { type: 'equivocation'; proof: EquivocationProof; reportedBy: SiteId }
  | { type: 'refusal'; reportedBy: SiteId; reason: string; accused?: SiteId };

/** What one step produced: deliveries to start now, in this order, and reports. */
export interface RouterReady<T> {
  deliveries: Delivery<T>[];
  reports: RouterReport[];
}

export function emptyRouterReady<T>(): RouterReady<T> {
  return { deliveries: [], reports: [] };
}

/** Catch-up certificates waiting for a site, capped so a long-dead site cannot grow the state. */
export const MAX_FORWARD = 64;

export function createRouter<T>(o: RouterOptions, verifier?: Verifier): Router<T> {
  if (o.members.length === 0) throw new Error('a BFT router needs at least one member site; got none');
  const { f, quorum } = bftSizes(o.members.length);
  return {
    ...(verifier ? { verifier } : {}),
    state: {
      members: [...o.members], view: o.view, f, quorum, tickLength: o.tickLength, liveWindow: o.liveWindow, maxInFlight: o.maxInFlight,
      forward: new Map(), executed: {}, firstVotes: new Map(), witnessed: new Set(), finished: [], busy: {}, retryAt: {}, lastHeard: {}, failing: {},
    },
  };
}

/** The first view from `from` whose primary is not failing, so a dead primary is skipped. */
export function viewFrom<T>(s: RouterState<T>, from: number): number {
  const n = s.members.length;
  for (let v = from; v < from + n; v++) if (s.failing[primaryOf(s.members, v)] === undefined) return v;
  return from;
}

