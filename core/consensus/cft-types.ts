/**
 * Messages and state of the crash-tolerant (Raft-style) replication, where the leader is the
 * Temporal workflow and the followers are the site agents. All plain data (JSON-safe) so it can
 * travel in activity payloads and be carried through continue-as-new.
 */
import type { SiteId } from './types';

/**
 * One slot of the replicated log. `noop` is the entry a new leader appends at the start of its
 * term so that entries of earlier terms commit with it (Raft §5.4.2 and §8).
 */
export type LogEntry<T> = { index: number; term: number; kind: 'noop' } | { index: number; term: number; kind: 'value'; value: T };

/** What a follower must have on disk before it answers (Raft figure 2, "persistent state"). */
export interface HardState {
  /** Highest term seen: the fencing token. Lower terms are refused. */
  term: number;
  /** The leader this site granted `term` to, if any. One leader per term. */
  vote: string | null;
  /** Highest index known committed. */
  commit: number;
}

interface Envelope {
  from: string;
  to: string;
  term: number;
}

/** A new leader epoch asks each site for `term` (Raft §5.2 RequestVote) and for its log from `fromIndex`. */
export interface VoteRequest extends Envelope {
  type: 'vote';
  fromIndex: number;
}

export interface VoteResponse<T> extends Envelope {
  type: 'vote-resp';
  granted: boolean;
  lastIndex: number;
  lastTerm: number;
  commit: number;
  /** The site's entries from the request's fromIndex; the leader adopts the most up-to-date log. */
  entries: LogEntry<T>[];
  reason?: string;
}

/** Raft §5.3 AppendEntries; also the heartbeat that carries the commit index. */
export interface Append<T> extends Envelope {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: LogEntry<T>[];
  commit: number;
}

export interface AppendResponse extends Envelope {
  type: 'append-resp';
  success: boolean;
  /** On success, the last index known to match the leader's log. */
  matchIndex: number;
  /** On refusal, the prevIndex that was refused, so the leader can ignore stale refusals. */
  rejectedPrevIndex: number;
  /** On refusal, where the leader should probe next: the last index that may match. */
  hintIndex: number;
  reason?: string;
}

export type CftMessage<T> = VoteRequest | VoteResponse<T> | Append<T> | AppendResponse;

/**
 * What one step produced, in the order the caller must act on it (etcd-io/raft node.go, Ready):
 * 1. persist: drop the log from `truncateFrom`, append `entries`, write `hardState`, fsync;
 * 2. only then send `messages` (a reply may claim the data is durable);
 * 3. then apply `committed`, which are already durable and agreed.
 */
export interface CftReady<T> {
  truncateFrom?: number;
  entries: LogEntry<T>[];
  hardState?: HardState;
  messages: CftMessage<T>[];
  committed: LogEntry<T>[];
}

/** A follower: what a site agent keeps. `log`, `term`, `vote`, `commit` are durable; `applied` is not. */
export interface FollowerState<T> {
  id: SiteId;
  term: number;
  vote: string | null;
  log: LogEntry<T>[];
  commit: number;
  applied: number;
}

export function emptyReady<T>(): CftReady<T> {
  return { entries: [], messages: [], committed: [] };
}

export function lastIndexOf<T>(log: readonly LogEntry<T>[]): number {
  return log.length;
}

/** Term of the entry at `index` (1-based); 0 for index 0, undefined past the end. */
export function termAt<T>(log: readonly LogEntry<T>[], index: number): number | undefined {
  if (index === 0) return 0;
  return log[index - 1]?.term;
}
