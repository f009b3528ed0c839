/**
 * The BFT router as a pure step function: it routes PBFT votes between the sites (each a replica,
 * bft-replica.ts, with its own key) and counts them. It does no I/O and reads no clock: events go
 * in (a site's reply, a failed delivery, a delivery slot freed, a tick, an idle heartbeat), and out
 * come the deliveries to start, in order, and reports for the operator (RouterReady). The
 * federation workflow is a thin shell that runs each delivery as an activity (workflows/federation/bft.ts).
 *
 * One round, router-mediated hops, every site in parallel within a hop:
 *   1. propose    → the primary (members[view mod n]) signs a pre-prepare;
 *   2. pre-prepare → each backup checks it and signs a prepare;
 *   3. prepares (all of them, routed in one bundle per site) → each site, once prepared, signs a commit;
 *   4. the certificate's quorum of commit votes → each site verifies them and commits.
 * With a verifier (the members' public keys) the router checks each commit vote itself and the
 * round is done after hop 3; hop 4 still goes out after the round returns, ahead of the next
 * round's messages. Without one the round is done when f+1 sites report the sequence committed
 * having refused none of the certificate's votes: one of them is honest, so every vote verified.
 *
 * Views: a round's primary that does not answer the propose is skipped by moving to the next view
 * whose primary answers (roundOutcome → 'abandoned', then changeView). This replaces PBFT's view
 * change and is safe here because every vote passes through the router: it knows no site can have
 * prepared anything in the abandoned view.
 */
import { makeCertificate } from './bft-certificate';
import { primaryOf } from './bft-replica-state';
import { catchUp, forwardTo, kick, kickAll, stageMessages } from './bft-router-deliveries';
import { onReply } from './bft-router-reply';
import { emptyRouterReady, viewFrom, type Router, type RouterReady, type RouterReply, type RouterRound, type RouterState } from './bft-router-state';
import type { CommitCertificate } from './bft-types';
import { digestOf } from './canonical-json';
import { quorumWait, type QuorumWait } from './quorum-wait';
import type { SiteId } from './types';

export type RouterEvent<T> =
  /** A site answered a delivery. */
  | { type: 'reply'; site: SiteId; reply: RouterReply<T>; now: number }
  /** A delivery got no answer in time (or failed): the site backs off for a tick. */
  | { type: 'failed'; site: SiteId; now: number }
  /** A delivery ended, after its reply or failure: its slot is free for the site's next one. */
  | { type: 'settled'; site: SiteId; now: number }
  /** A waiting round's tick passed: send the current stage again to every site that has not moved on. */
  | { type: 'tick'; now: number }
  /** Idle: deliver catch-up certificates and a returned round's hop 4. */
  | { type: 'heartbeat'; now: number };

/** One step of the router: a switch on the event type, as etcd-io/raft's step functions. */
export function stepRouter<T>(rt: Router<T>, e: RouterEvent<T>): RouterReady<T> {
  const s = rt.state;
  const ready = emptyRouterReady<T>();
  switch (e.type) {
    case 'reply':
      s.lastHeard[e.site] = e.now;
      delete s.failing[e.site];
      delete s.retryAt[e.site];
      onReply(rt, e.site, e.reply, e.now, ready);
      return ready;
    case 'failed': {
      s.failing[e.site] ??= e.now;
      s.retryAt[e.site] = e.now + s.tickLength;
      const r = s.round;
      // A propose that got no answer may or may not have been signed: never re-propose in this view.
      if (r && e.site === r.primary && !r.prePrepare) r.abandoned = true;
      return ready;
    }
    case 'settled':
      s.busy[e.site] = (s.busy[e.site] ?? 1) - 1;
      kick(rt, e.site, e.now, ready);
      return ready;
    case 'tick':
      if (s.round) s.round.delivered = {};
      kickAll(rt, e.now, ready);
      return ready;
    case 'heartbeat': {
      // Hop 4 of a returned round goes out once through the forward queue; a delivery that failed
      // took its messages with it, so send them again to the sites that have not confirmed.
      const fin = s.finishing;
      if (fin) {
        for (const site of s.members) {
          if (fin.confirmed.has(site) || s.forward.has(site) || (s.busy[site] ?? 0) > 0) continue;
          const messages = stageMessages(fin, site, 3);
          if (messages.length) s.forward.set(site, messages);
        }
      }
      kickAll(rt, e.now, ready);
      return ready;
    }
  }
}

/** Starts a round for `batch` in the first view from the current one whose primary is not failing. */
export function startRound<T>(rt: Router<T>, batch: T, now: number): RouterReady<T> {
  rt.state.view = viewFrom(rt.state, rt.state.view);
  return openRound(rt, batch, now);
}

/** Opens a round for `batch` in the current view and proposes it to the view's primary. */
export function openRound<T>(rt: Router<T>, batch: T, now: number): RouterReady<T> {
  const s = rt.state;
  s.round = {
    batch, digest: digestOf(batch), view: s.view, primary: primaryOf(s.members, s.view), proposed: false, abandoned: false, prepareVotes: [],
    ppAcked: new Set(), matching: new Set(), commits: {}, distrusted: new Set(), confirmed: new Set(), delivered: {},
  };
  const ready = emptyRouterReady<T>();
  kickAll(rt, now, ready);
  return ready;
}

export type RoundOutcome = 'none' | 'open' | 'done' | 'abandoned';

export function roundOutcome<T>(rt: Router<T>): RoundOutcome {
  const r = rt.state.round;
  if (!r) return 'none';
  if (done(rt, r)) return 'done';
  return r.abandoned ? 'abandoned' : 'open';
}

/** Ends a done round: its certificate, and the deliveries that tell the other sites (hop 4, catch-up). */
export function closeRound<T>(rt: Router<T>, now: number): { ready: RouterReady<T>; certificate: CommitCertificate; view: number; seq: number } {
  const s = rt.state;
  const r = s.round;
  if (!r || !done(rt, r)) throw new Error('closeRound needs a done round; check roundOutcome first');
  const ready = emptyRouterReady<T>();
  s.round = undefined;
  s.firstVotes.clear();
  if (rt.verifier) finish(rt, r, now, ready);
  else catchUp(rt, r, now, ready);
  return { ready, certificate: makeCertificate(r.view, r.seq!, r.digest, r.certVotes!), view: r.view, seq: r.seq! };
}

/** Leaves an abandoned round's view for the next one whose primary is not failing; says why. Reopen with openRound. */
export function changeView<T>(rt: Router<T>): string {
  const s = rt.state;
  const r = s.round;
  if (!r) throw new Error('changeView needs an abandoned round; there is none');
  s.view = viewFrom(s, s.view + 1);
  // Sites report how far they executed per view: the new view's replicas start again.
  for (const k of Object.keys(s.executed)) delete s.executed[k];
  return `primary ${r.primary} of view ${r.view} did not answer; retrying in view ${s.view} (primary ${primaryOf(s.members, s.view)})`;
}

/** How many sites answered within the live window vs the quorum a round needs. */
export function routerQuorumWait<T>(s: RouterState<T>, now: number): QuorumWait {
  return quorumWait(s.members, s.lastHeard, now - s.liveWindow, s.quorum);
}

function done<T>(rt: Router<T>, r: RouterRound<T>): boolean {
  if (r.certVotes === undefined) return false;
  // With a verifier, every vote in certVotes verified at the router (see onReply).
  return rt.verifier !== undefined || r.confirmed.size >= rt.state.f + 1;
}

/** Hop 4 after the round returned: each site that has not confirmed gets what it lacks, ahead of any later round. */
function finish<T>(rt: Router<T>, r: RouterRound<T>, now: number, ready: RouterReady<T>): void {
  const s = rt.state;
  for (const site of s.members) {
    // Sites that already have hop 4 (sent when the votes came in) are not sent it twice.
    if (r.confirmed.has(site) || (r.delivered[site] ?? 0) >= 3) continue;
    const messages = stageMessages(r, site, 3);
    if (messages.length) forwardTo(s, site, messages);
  }
  s.finishing = r.confirmed.size >= s.f + 1 ? undefined : r;
  if (!s.finishing) catchUp(rt, r, now, ready);
  s.finished.push(r);
  if (s.finished.length > 8) s.finished.shift();
  kickAll(rt, now, ready);
}

