/**
 * The leader role of the crash-tolerant protocol, run by the Temporal workflow. Each leader epoch
 * (a new workflow run, or a retry after being fenced) takes a new term, wins it from a majority
 * (like Raft §5.2, but the sites grant by term alone), adopts the most up-to-date log among the
 * grants (this is what Raft's election restriction §5.4.1 guarantees), then replicates it.
 */
import { emptyReady, termAt, type Append, type AppendResponse, type CftMessage, type CftReady, type LogEntry, type VoteResponse } from './cft-types';
import { committedIndex, majority } from './quorum';
import { quorumWait, type QuorumWait } from './quorum-wait';
import type { SiteId } from './types';

export interface LeaderOptions<T> {
  /** The leader's name, e.g. the workflow id; sites grant each term to one name only. */
  id: string;
  /** Must exceed every term used before; sites refuse lower ones. */
  term: number;
  members: readonly SiteId[];
  /** A committed prefix the leader already holds (indexes 1..base.length); sites then send only what follows. */
  base?: LogEntry<T>[];
  /** Ticks between heartbeats and retransmissions. */
  heartbeatTicks?: number;
  /** A site not heard from for this many ticks counts as unreachable in quorumWait. */
  liveWindowTicks?: number;
  /** Most entries per append, so one activity payload stays small. */
  maxBatch?: number;
}

interface Progress {
  /** Next index to send (Raft figure 2, nextIndex). */
  next: number;
  /** Highest index known persisted at the site (matchIndex). */
  match: number;
}

export interface LeaderState<T> {
  id: string;
  term: number;
  members: SiteId[];
  phase: 'campaign' | 'leading' | 'deposed';
  base: LogEntry<T>[];
  grants: Record<SiteId, VoteResponse<T>>;
  log: LogEntry<T>[];
  commit: number;
  progress: Record<SiteId, Progress>;
  /** Proposals made while campaigning; appended once the term is won. */
  queued: T[];
  lastHeard: Record<SiteId, number>;
  tick: number;
  heartbeatTicks: number;
  liveWindowTicks: number;
  maxBatch: number;
  /** Why this leader stopped: a site has seen a higher term. */
  deposedBy?: { term: number; site: SiteId; reason: string };
}

/** Starts a leader epoch: the Ready asks every site for the term. */
export function startLeader<T>(o: LeaderOptions<T>): { state: LeaderState<T>; ready: CftReady<T> } {
  if (o.members.length === 0) throw new Error('a leader needs at least one member site; got none');
  if (!Number.isSafeInteger(o.term) || o.term < 1) throw new Error(`term must be a whole number ≥ 1; got ${o.term}`);
  const state: LeaderState<T> = {
    id: o.id, term: o.term, members: [...o.members], phase: 'campaign', base: o.base ?? [], grants: {}, log: [], commit: 0,
    progress: {}, queued: [], lastHeard: {}, tick: 0, heartbeatTicks: o.heartbeatTicks ?? 2, liveWindowTicks: o.liveWindowTicks ?? 10,
    maxBatch: o.maxBatch ?? 64,
  };
  const ready = emptyReady<T>();
  for (const site of state.members) ready.messages.push(voteRequest(state, site));
  return { state, ready };
}

/** Proposes a value. While campaigning it is queued; a deposed leader refuses (start a new epoch). */
export function proposeLeader<T>(s: LeaderState<T>, value: T): CftReady<T> {
  if (s.phase === 'deposed') {
    throw new Error(`leader ${s.id} of term ${s.term} was deposed (${s.deposedBy?.reason}); start a new epoch with a term above ${s.deposedBy?.term}`);
  }
  if (s.phase === 'campaign') {
    s.queued.push(value);
    return emptyReady();
  }
  s.log.push({ index: s.log.length + 1, term: s.term, kind: 'value', value });
  return broadcast(s);
}

/** Advances logical time: heartbeats carry the commit index and retransmit what was lost. */
export function tickLeader<T>(s: LeaderState<T>): CftReady<T> {
  s.tick++;
  if (s.phase === 'deposed' || s.tick % s.heartbeatTicks !== 0) return emptyReady();
  if (s.phase === 'campaign') {
    // Ask granted sites again too: re-granting is idempotent and keeps quorumWait current.
    const ready = emptyReady<T>();
    for (const site of s.members) ready.messages.push(voteRequest(s, site));
    return ready;
  }
  return broadcast(s);
}

/** One step of the leader: a switch on the message type, as etcd-io/raft stepLeader. */
export function stepLeader<T>(s: LeaderState<T>, m: CftMessage<T>): CftReady<T> {
  if (!s.members.includes(m.from) || m.to !== s.id) return emptyReady();
  if (m.term > s.term && s.phase !== 'deposed') {
    const reason = ('reason' in m && m.reason) || `site ${m.from} is at term ${m.term}`;
    s.phase = 'deposed';
    s.deposedBy = { term: m.term, site: m.from, reason };
    return emptyReady();
  }
  if (m.term < s.term || s.phase === 'deposed') return emptyReady(); // a reply to an older epoch
  s.lastHeard[m.from] = s.tick;
  switch (m.type) {
    case 'vote-resp':
      return onVoteResponse(s, m);
    case 'append-resp':
      return onAppendResponse(s, m);
    case 'vote':
    case 'append':
      return emptyReady(); // only sites receive these
  }
}

/** How many sites the leader hears from vs how many a commit needs. */
export function leaderQuorumWait<T>(s: LeaderState<T>): QuorumWait {
  return quorumWait(s.members, s.lastHeard, s.tick - s.liveWindowTicks, majority(s.members.length));
}

function onVoteResponse<T>(s: LeaderState<T>, m: VoteResponse<T>): CftReady<T> {
  if (s.phase !== 'campaign' || !m.granted) return emptyReady();
  s.grants[m.from] = m;
  if (Object.keys(s.grants).length < majority(s.members.length)) return emptyReady();

  // Any committed entry is on a majority, so on at least one granting site; the grant with the
  // highest (lastTerm, lastIndex) holds every committed entry (Raft §5.4.1 / §5.4.3).
  const best = Object.values(s.grants).reduce((a, b) => (b.lastTerm > a.lastTerm || (b.lastTerm === a.lastTerm && b.lastIndex > a.lastIndex) ? b : a));
  const fromIndex = s.base.length + 1;
  s.log = [...s.base, ...best.entries.filter((e) => e.index >= fromIndex)];
  s.log.forEach((e, i) => {
    if (e.index !== i + 1) throw new Error(`site ${best.from} sent a log with index ${e.index} at position ${i + 1}; logs must be contiguous`);
  });
  // Entries the sites already know committed are committed; later ones wait for this term's noop.
  s.commit = Math.min(s.log.length, Math.max(s.base.length, ...Object.values(s.grants).map((g) => g.commit)));
  const noopIndex = s.log.length + 1;
  s.log.push({ index: noopIndex, term: s.term, kind: 'noop' });
  for (const value of s.queued) s.log.push({ index: s.log.length + 1, term: s.term, kind: 'value', value });
  s.queued = [];
  s.phase = 'leading';
  for (const site of s.members) s.progress[site] = { next: noopIndex, match: 0 };
  const ready = broadcast(s);
  ready.committed = s.log.slice(0, s.commit);
  return ready;
}

function onAppendResponse<T>(s: LeaderState<T>, m: AppendResponse): CftReady<T> {
  const p = s.progress[m.from];
  if (s.phase !== 'leading' || !p) return emptyReady();
  const ready = emptyReady<T>();
  if (m.success) {
    if (m.matchIndex > p.match) p.match = Math.min(m.matchIndex, s.log.length);
    p.next = Math.max(p.next, p.match + 1);
    const before = s.commit;
    const idx = committedIndex(s.members, Object.fromEntries(s.members.map((site) => [site, s.progress[site]?.match ?? 0])));
    // Raft §5.4.2: count replicas only for entries of the current term.
    if (idx > s.commit && termAt(s.log, idx) === s.term) s.commit = idx;
    if (s.commit > before) {
      const out = broadcast(s); // tell every site the new commit index now, not at the next heartbeat
      out.committed = s.log.slice(before, s.commit);
      return out;
    }
    if (p.next <= s.log.length) ready.messages.push(appendTo(s, m.from));
    return ready;
  }
  // A refusal of an older probe says nothing about the current one (etcd maybeDecrTo).
  if (m.rejectedPrevIndex !== p.next - 1) return ready;
  p.next = Math.max(p.match + 1, Math.min(m.rejectedPrevIndex, m.hintIndex + 1));
  ready.messages.push(appendTo(s, m.from));
  return ready;
}

function broadcast<T>(s: LeaderState<T>): CftReady<T> {
  const ready = emptyReady<T>();
  for (const site of s.members) ready.messages.push(appendTo(s, site));
  return ready;
}

function appendTo<T>(s: LeaderState<T>, site: SiteId): Append<T> {
  const p = s.progress[site] as Progress;
  const prevIndex = p.next - 1;
  return {
    type: 'append', from: s.id, to: site, term: s.term, prevIndex, prevTerm: termAt(s.log, prevIndex) ?? 0,
    entries: s.log.slice(prevIndex, prevIndex + s.maxBatch), commit: s.commit,
  };
}

function voteRequest<T>(s: LeaderState<T>, site: SiteId): CftMessage<T> {
  return { type: 'vote', from: s.id, to: site, term: s.term, fromIndex: s.base.length + 1 };
}
