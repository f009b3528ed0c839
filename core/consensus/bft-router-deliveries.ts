/**
 * What the BFT router sends, and when: the stage each site lacks, the forward queue (catch-up,
 * hop 4 of a returned round, equivocation evidence), and the per-site delivery slots. A delivery
 * starts only if the site has a free slot (maxInFlight) and is not backing off after a failure.
 */
import type { RouterReady, RouterRound, RouterState, Router, Delivery } from './bft-router-state';
import type { BftMessage } from './bft-types';
import type { SiteId } from './types';

/** 0: before the pre-prepare is known; 1: pre-prepare; 2: a quorum can prepare; 3: a certificate's commit votes are in. */
export function stageOf<T>(s: RouterState<T>, r: RouterRound<T>): number {
  if (r.certVotes) return 3;
  if (r.matching.size >= s.quorum - 1) return 2;
  return r.prePrepare ? 1 : 0;
}

/** The votes of `stage` that `site` lacks for round `r`. */
export function stageMessages<T>(r: RouterRound<T>, site: SiteId, stage: number): BftMessage<T>[] {
  const messages: BftMessage<T>[] = [];
  if (site !== r.primary && !r.ppAcked.has(site)) messages.push({ type: 'pre-prepare', to: site, vote: r.prePrepare!, value: r.batch });
  if (stage >= 2 && !r.commits[site]) {
    // Matching votes first, so an honest site counts them before it meets a conflicting one.
    const ordered = [...r.prepareVotes].sort((a, b) => Number(b.digest === r.digest) - Number(a.digest === r.digest));
    for (const vote of ordered) if (vote.site !== site) messages.push({ type: 'prepare', to: site, vote });
  }
  if (stage >= 3 && !r.confirmed.has(site)) {
    for (const vote of r.certVotes!) if (vote.site !== site) messages.push({ type: 'commit', to: site, vote });
  }
  return messages;
}

/** What `site` needs now: the batch to propose (primary), or the votes of the current stage it lacks. */
export function nextFor<T>(s: RouterState<T>, site: SiteId, now: number): Omit<Delivery<T>, 'site' | 'view' | 'forSeq'> | undefined {
  const fwd = s.forward.get(site) ?? [];
  s.forward.delete(site);
  const r = s.round;
  if (!r) return fwd.length ? { messages: fwd } : undefined;
  if (!r.prePrepare) {
    if (site !== r.primary || r.proposed) return fwd.length ? { messages: fwd } : undefined;
    r.proposed = true;
    return { propose: r.batch, messages: fwd };
  }
  const stage = stageOf(s, r);
  if ((r.delivered[site] ?? 0) >= stage) return fwd.length ? { messages: fwd } : undefined;
  const messages: BftMessage<T>[] = [...fwd, ...stageMessages(r, site, stage)];
  r.delivered[site] = stage;
  if (messages.length) return { messages };
  // Nothing new for this site, but a round waits on it: an empty delivery keeps its liveness (and
  // so the `waiting for quorum: k of n sites reachable` count) current.
  return now - (s.lastHeard[site] ?? -Infinity) >= s.tickLength ? { messages } : undefined;
}

/** Queues messages for a site outside the current stage; they go with its next delivery. */
export function forwardTo<T>(s: RouterState<T>, site: SiteId, messages: readonly BftMessage<T>[], cap = Infinity): void {
  const q = s.forward.get(site) ?? [];
  for (const m of messages) if (q.length < cap) q.push(m);
  s.forward.set(site, q);
}

/** Starts a delivery to `site` if it has a free slot, is not backing off, and has something to hear. */
export function kick<T>(rt: Router<T>, site: SiteId, now: number, ready: RouterReady<T>): void {
  const s = rt.state;
  if ((s.busy[site] ?? 0) >= s.maxInFlight) return; // kicked again when a delivery ends ('settled')
  const at = s.retryAt[site];
  if (at !== undefined && now < at) return;
  const next = nextFor(s, site, now);
  if (!next) return;
  s.busy[site] = (s.busy[site] ?? 0) + 1;
  const forSeq = s.round?.seq;
  ready.deliveries.push({ site, view: s.view, ...(forSeq !== undefined ? { forSeq } : {}), ...next });
}

export function kickAll<T>(rt: Router<T>, now: number, ready: RouterReady<T>): void {
  for (const site of rt.state.members) kick(rt, site, now, ready);
}

/** Sites that did not execute the round's sequence get certificates from one that did, through its `status` answer. */
export function catchUp<T>(rt: Router<T>, r: RouterRound<T>, now: number, ready: RouterReady<T>): void {
  const s = rt.state;
  const helper = [...r.confirmed].find((x) => (s.executed[x] ?? 0) >= r.seq!);
  if (!helper) return;
  for (const site of s.members) {
    const e = s.executed[site];
    if (site === helper || e === undefined || e >= r.seq!) continue;
    forwardTo(s, helper, [{ type: 'status', to: helper, from: site, executed: e }]);
  }
  kick(rt, helper, now, ready);
}
