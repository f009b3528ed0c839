/**
 * "Waiting for quorum: 2 of 4 sites reachable, need 3": what a round can tell a workflow when
 * it cannot commit, so the UI says why it waits instead of spinning silently.
 */
import type { SiteId } from './types';

export interface QuorumWait {
  /** Sites heard from within the liveness window, this one included when it is a site. */
  reachable: number;
  /** Sites whose acknowledgement a commit needs. */
  needed: number;
  /** Sites in the federation. */
  total: number;
  /** Sites not heard from within the window, sorted, so an operator knows whom to look at. */
  silent: SiteId[];
}

/** Counts sites heard from at or after `since` (in logical ticks). */
export function quorumWait(
  members: readonly SiteId[],
  lastHeard: Readonly<Record<SiteId, number>>,
  since: number,
  needed: number,
): QuorumWait {
  const silent = members.filter((m) => (lastHeard[m] ?? Number.NEGATIVE_INFINITY) < since).sort();
  return { reachable: members.length - silent.length, needed, total: members.length, silent };
}

export function hasQuorum(w: QuorumWait): boolean {
  return w.reachable >= w.needed;
}

export function describeQuorumWait(w: QuorumWait): string {
  const head = `${w.reachable} of ${w.total} sites reachable, need ${w.needed}`;
  if (hasQuorum(w)) return `quorum reachable: ${head}`;
  return `waiting for quorum: ${head}` + (w.silent.length ? ` (silent: ${w.silent.join(', ')})` : '');
}
