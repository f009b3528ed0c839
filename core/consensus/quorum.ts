/**
 * Quorum math for both kinds of agreement, with no I/O so a workflow can import it.
 *
 * Majority (CFT) follows etcd-io/raft quorum/majority.go: the committed index is the
 * acknowledged index at the majority position of the sorted acks. BFT sizes follow
 * PBFT (Castro & Liskov, OSDI'99, §4): n ≥ 3f+1 sites tolerate f Byzantine ones.
 */
import type { SiteId } from './types';

/** Sites needed for a majority of `n` voters (Raft §5.2). */
export function majority(n: number): number {
  assertCount(n, 'majority');
  return Math.floor(n / 2) + 1;
}

/**
 * The highest log index that a majority of `voters` has acknowledged (persisted).
 * A voter missing from `acked` counts as having acknowledged nothing (index 0).
 *
 * Why sorting works: after sorting ascending, every voter at or after position
 * n - majority(n) has acked at least that position's index, and there are exactly
 * majority(n) such voters.
 */
export function committedIndex(voters: readonly SiteId[], acked: Readonly<Record<SiteId, number>>): number {
  if (voters.length === 0) throw new Error('committedIndex needs at least one voter; got an empty voter list');
  const sorted = voters.map((v) => acked[v] ?? 0).sort((a, b) => a - b);
  return sorted[voters.length - majority(voters.length)] as number;
}

/** Byzantine sizes for `n` sites: how many may be faulty and how many votes form a quorum. */
export interface BftSizes {
  n: number;
  /** The most Byzantine sites `n` can tolerate: floor((n - 1) / 3). */
  f: number;
  /**
   * Votes that form a quorum: ceil((n + f + 1) / 2), which is 2f+1 when n = 3f+1.
   * Why not always 2f+1: with n = 5, f = 1, two sets of 3 meet in 1 site, which may be the
   * Byzantine one; quorums must meet in f+1 sites so that one honest site is in both.
   */
  quorum: number;
}

export function bftSizes(n: number): BftSizes {
  assertCount(n, 'bftSizes');
  const f = maxFaulty(n);
  return { n, f, quorum: Math.ceil((n + f + 1) / 2) };
}

/** The largest f with n ≥ 3f + 1. */
export function maxFaulty(n: number): number {
  assertCount(n, 'maxFaulty');
  return Math.floor((n - 1) / 3);
}

/** The fewest sites that tolerate `f` Byzantine ones: 3f + 1. */
export function sitesForFaults(f: number): number {
  if (!Number.isSafeInteger(f) || f < 0) throw new Error(`sitesForFaults needs a whole number of faults ≥ 0; got ${f}`);
  return 3 * f + 1;
}

function assertCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${what} needs a whole number of sites ≥ 1; got ${n}`);
}
