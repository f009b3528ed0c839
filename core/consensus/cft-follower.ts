/**
 * The follower role of the crash-tolerant protocol: what runs in a site agent. The workflow is
 * the leader; terms are fencing tokens so a stale workflow (an older epoch) cannot overwrite.
 */
import {
  emptyReady,
  termAt,
  type Append,
  type AppendResponse,
  type CftMessage,
  type CftReady,
  type FollowerState,
  type LogEntry,
  type VoteRequest,
} from './cft-types';
import type { SiteId } from './types';

/** A follower as restored from disk. `applied` starts at `commit`: the agent rebuilds applied state from its own log. */
export function restoreFollower<T>(id: SiteId, durable: { term: number; vote: string | null; commit: number; log: LogEntry<T>[] }): FollowerState<T> {
  if (durable.commit > durable.log.length) {
    throw new Error(`site ${id}: durable commit index ${durable.commit} is past its log (last index ${durable.log.length}); the log lost committed entries`);
  }
  return { id, term: durable.term, vote: durable.vote, log: [...durable.log], commit: durable.commit, applied: durable.commit };
}

/** One step of a follower. Mutates `s`; returns what to persist, send and apply (see CftReady). */
export function stepFollower<T>(s: FollowerState<T>, m: CftMessage<T>): CftReady<T> {
  switch (m.type) {
    case 'vote':
      return onVote(s, m);
    case 'append':
      return onAppend(s, m);
    case 'vote-resp':
    case 'append-resp':
      // Responses go to the leader (the workflow); a site receiving one is misrouted. Ignore it.
      return emptyReady();
  }
}

function onVote<T>(s: FollowerState<T>, m: VoteRequest): CftReady<T> {
  const ready = emptyReady<T>();
  const lastIndex = s.log.length;
  const reply = (granted: boolean, reason?: string) =>
    ready.messages.push({
      type: 'vote-resp', from: s.id, to: m.from, term: s.term, granted, lastIndex, lastTerm: termAt(s.log, lastIndex) ?? 0,
      commit: s.commit, entries: granted ? s.log.slice(Math.max(0, m.fromIndex - 1)) : [], ...(reason ? { reason } : {}),
    });
  if (m.term < s.term) {
    reply(false, `stale term ${m.term} from leader ${m.from}: site ${s.id} has seen term ${s.term}; start a new epoch with a term above ${s.term}`);
    return ready;
  }
  if (m.term === s.term && s.vote !== null && s.vote !== m.from) {
    reply(false, `term ${m.term} is already granted to leader ${s.vote}; leader ${m.from} needs a term above ${s.term}`);
    return ready;
  }
  if (m.term !== s.term || s.vote !== m.from) {
    s.term = m.term;
    s.vote = m.from;
    ready.hardState = { term: s.term, vote: s.vote, commit: s.commit };
  }
  reply(true);
  return ready;
}

function onAppend<T>(s: FollowerState<T>, m: Append<T>): CftReady<T> {
  const ready = emptyReady<T>();
  const reply = (r: Omit<AppendResponse, 'type' | 'from' | 'to' | 'term'>) =>
    ready.messages.push({ type: 'append-resp', from: s.id, to: m.from, term: s.term, ...r });
  const refuse = (hintIndex: number, reason: string) => reply({ success: false, matchIndex: 0, rejectedPrevIndex: m.prevIndex, hintIndex, reason });

  // Fencing (Raft §5.1): a leader of an older term is stale and must not change this log.
  if (m.term < s.term) {
    refuse(s.log.length, `stale leader ${m.from} at term ${m.term}: site ${s.id} has seen term ${s.term}`);
    return ready;
  }
  if (m.term === s.term && s.vote !== null && s.vote !== m.from) {
    refuse(s.log.length, `leader ${m.from} claims term ${m.term}, which site ${s.id} granted to ${s.vote}`);
    return ready;
  }
  if (m.term !== s.term || s.vote !== m.from) {
    // An append proves its leader won a majority for m.term; adopt it so no other leader gets it.
    s.term = m.term;
    s.vote = m.from;
    ready.hardState = { term: s.term, vote: s.vote, commit: s.commit };
  }

  const lastIndex = s.log.length;
  if (m.prevIndex > lastIndex) {
    refuse(lastIndex, `site ${s.id} has no entry at prevIndex ${m.prevIndex} (its last index is ${lastIndex})`);
    return ready;
  }
  const localPrevTerm = termAt(s.log, m.prevIndex) as number;
  if (localPrevTerm !== m.prevTerm) {
    // Skip back past every entry whose term is above prevTerm: none of them can match (etcd findConflictByTerm).
    let hint = m.prevIndex;
    while (hint > 0 && (termAt(s.log, hint) as number) > m.prevTerm) hint--;
    if (hint === m.prevIndex) hint--;
    refuse(hint, `site ${s.id} has term ${localPrevTerm} at index ${m.prevIndex}, the leader expected term ${m.prevTerm}`);
    return ready;
  }
  const malformed = m.entries.findIndex((e, i) => e.index !== m.prevIndex + 1 + i);
  if (malformed >= 0) {
    refuse(lastIndex, `append entries must run from index ${m.prevIndex + 1} without gaps; entry ${malformed} has index ${m.entries[malformed]?.index}`);
    return ready;
  }

  // Raft §5.3: delete an existing entry only if it conflicts (same index, other term), so a
  // delayed shorter append never truncates entries a later append already added.
  let firstNew = m.entries.length;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i] as LogEntry<T>;
    const local = termAt(s.log, e.index);
    if (local === e.term) continue;
    if (local !== undefined) {
      if (e.index <= s.commit) {
        throw new Error(`safety violation at site ${s.id}: leader ${m.from} (term ${m.term}) would overwrite committed index ${e.index} (commit ${s.commit})`);
      }
      s.log.length = e.index - 1;
      ready.truncateFrom = e.index;
    }
    firstNew = i;
    break;
  }
  const added = m.entries.slice(firstNew);
  for (const e of added) s.log.push(e);
  ready.entries = added;

  const lastNew = m.prevIndex + m.entries.length;
  const commit = Math.min(m.commit, lastNew);
  if (commit > s.commit) {
    s.commit = commit;
    ready.hardState = { term: s.term, vote: s.vote, commit: s.commit };
  }
  if (s.commit > s.applied) {
    ready.committed = s.log.slice(s.applied, s.commit);
    s.applied = s.commit;
  }
  reply({ success: true, matchIndex: lastNew, rejectedPrevIndex: 0, hintIndex: 0 });
  return ready;
}
