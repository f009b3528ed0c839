/**
 * The payloads of the consensus activities, shared by the site agents (activities/consensus.ts)
 * and the workflows that carry the messages (workflows import these as types only). All plain
 * JSON data, and small: a message carries digests, signatures and entries, never bulk bytes.
 */
import type { BftMessage, EquivocationProof, Refusal } from '../consensus/bft-types';
import type { CftMessage } from '../consensus/cft-types';
import type { FederationEntry } from '../consensus/entries';
import type { SiteId } from '../consensus/types';

/**
 * What one BFT sequence decides: a batch of federation entries. `ordinal` is the position of the
 * batch's first entry in the federation's total order (what the federation workflow applied
 * before it), so a site can merge BFT batches with the CFT log in the order the federation used.
 */
export interface BftBatch {
  federation: string;
  ordinal: number;
  entries: FederationEntry[];
}

export type CftMsg = CftMessage<FederationEntry>;
export type BftMsg = BftMessage<BftBatch>;

export interface CftDeliverInput {
  federation: string;
  messages: CftMsg[];
}

export interface CftDeliverResult {
  site: SiteId;
  /** Replies to the leader, sent only after the site's log is durable. */
  replies: CftMsg[];
  term: number;
  commit: number;
  lastIndex: number;
}

export interface BftDeliverInput {
  federation: string;
  /** The view and its members, in the order that fixes the primary (members[view mod n]). */
  view: number;
  members: SiteId[];
  /** Only to the primary: the batch to pre-prepare at its next sequence. */
  propose?: BftBatch;
  messages: BftMsg[];
}

export interface BftDeliverResult {
  site: SiteId;
  view: number;
  /** Messages to other sites (votes this site signed, certificates for laggards). */
  messages: BftMsg[];
  /** Sequences this step committed at the site, in order. */
  committed: { seq: number; digest: string }[];
  /** Every sequence up to here is committed at the site. */
  executed: number;
  equivocations: EquivocationProof[];
  refused: Refusal[];
}

/** The bare activity of the benchmark: one round trip through a site's task queue, no work. */
export interface PingResult {
  site: SiteId;
}
