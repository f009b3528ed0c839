/**
 * A site's reply to the BFT router: confirmations of a returned round, the site's reports, then
 * each vote it hands in, checked (its own, for the sequence it was asked about, of the type it
 * claims, signed, when the router has the keys) and counted for the round. The checks are the
 * router's own, without crypto except for commit votes; the sites verify everything else.
 */
import { makeCertificate } from './bft-certificate';
import { catchUp, forwardTo, kickAll, stageOf } from './bft-router-deliveries';
import { MAX_FORWARD, type Router, type RouterReady, type RouterReply, type RouterState } from './bft-router-state';
import type { SignedVote } from './bft-types';
import { voteSignatureValid } from './bft-votes';
import type { SiteId } from './types';

/** A site's reply: confirmations, reports, then its votes, routed and counted. */
export function onReply<T>(rt: Router<T>, site: SiteId, res: RouterReply<T>, now: number, ready: RouterReady<T>): void {
  const s = rt.state;
  if (res.view !== s.view) return;
  s.executed[site] = res.executed;
  const fin = s.finishing;
  if (fin && res.committed.some((c) => c.seq === fin.seq && c.digest === fin.digest)) {
    fin.confirmed.add(site);
    if (fin.confirmed.size >= s.f + 1) {
      s.finishing = undefined;
      catchUp(rt, fin, now, ready);
    }
  }
  for (const proof of res.equivocations) ready.reports.push({ type: 'equivocation', proof, reportedBy: site });
  const accusesCert = takeRefusals(rt, site, res, ready);
  for (const m of res.messages) routeMessage(rt, site, m, res.forSeq, ready);
  const r = s.round;
  if (r && r.seq !== undefined) {
    if (!r.certVotes && stageOf(s, r) >= 2) {
      const votes = Object.values(r.commits);
      if (votes.length >= s.quorum) r.certVotes = makeCertificate(r.view, r.seq, r.digest, votes).votes.slice(0, s.quorum);
    }
    if (r.certVotes && !accusesCert && res.committed.some((c) => c.seq === r.seq && c.digest === r.digest)) r.confirmed.add(site);
  }
  kickAll(rt, now, ready);
}

/** Reports the site's refusals; without a verifier, one that accuses a certificate vote of forgery evicts it. Returns whether one did. */
function takeRefusals<T>(rt: Router<T>, site: SiteId, res: RouterReply<T>, ready: RouterReady<T>): boolean {
  let accusesCert = false;
  for (const rf of res.refused) {
    ready.reports.push(rf.site !== undefined ? { type: 'refusal', reportedBy: site, reason: rf.reason, accused: rf.site } : { type: 'refusal', reportedBy: site, reason: rf.reason });
    const r = rt.state.round;
    // With the keys, the router verified every vote of the certificate itself: a site's claim that
    // one does not verify is recorded (above) but cannot evict an honest site's vote.
    if (!rt.verifier && r?.certVotes && rf.site && /signature does not verify/.test(rf.reason) && r.certVotes.some((v) => v.site === rf.site)) {
      accusesCert = true;
      // Some site says this commit vote is forged: leave it out and build the certificate again.
      r.distrusted.add(rf.site);
      delete r.commits[rf.site];
      r.certVotes = undefined;
      r.confirmed.clear();
      r.delivered = {};
    }
  }
  return accusesCert;
}

/** One message a site handed in: catch-up passed on, or a vote checked and counted for the round. */
function routeMessage<T>(rt: Router<T>, site: SiteId, m: RouterReply<T>['messages'][number], forSeq: number | undefined, ready: RouterReady<T>): void {
  const s = rt.state;
  const r = s.round;
  const refuse = (reason: string) => ready.reports.push({ type: 'refusal', reportedBy: 'router', reason, accused: site });
  switch (m.type) {
    case 'certificate':
      // Self-verifying catch-up for a lagging site: pass it on.
      forwardTo(s, m.to, [m], MAX_FORWARD);
      return;
    case 'status':
      return;
    case 'pre-prepare':
    case 'prepare':
    case 'commit': {
      if (!r) return;
      const v = m.vote;
      // A vote is what it signs: a prepare handed in as a commit (or the reverse) is not routed.
      if (v.type !== m.type) return void refuse(`${m.type} message from ${site} carries a ${v.type} vote (not routed)`);
      // A site speaks for itself only: a vote it hands in for another site is not routed.
      if (v.site !== site) return void refuse(`${m.type} from ${site} claims to be signed by ${v.site}; a site can only hand in its own votes (not routed)`);
      if (v.seq !== forSeq && lateVote(s, site, m.type, v)) return;
      // An honest site answers for the sequence it was asked about; an older one is a replay.
      if (forSeq !== undefined && v.seq !== forSeq) return void refuse(`replayed ${m.type} from ${site} for view ${v.view} seq ${v.seq}; it was asked about seq ${forSeq} (not routed)`);
      if (v.view !== r.view || (r.seq !== undefined && v.seq !== r.seq)) return; // a late answer from an earlier round
      watchForEquivocation(s, site, m.type, v);
      if (m.type === 'pre-prepare') {
        if (site === r.primary && !r.prePrepare && v.digest === r.digest) {
          r.prePrepare = v;
          r.seq = v.seq;
        }
        return;
      }
      if (r.seq === undefined || v.seq !== r.seq) return;
      if (m.type === 'prepare') {
        if (!r.prepareVotes.some((x) => x.sig === v.sig)) r.prepareVotes.push(v);
        r.ppAcked.add(site);
        if (v.digest === r.digest && site !== r.primary) r.matching.add(site);
      } else if (v.digest === r.digest && !r.distrusted.has(site) && !r.commits[site]) {
        if (rt.verifier && !voteSignatureValid(rt.verifier, v)) {
          // Checked here, so a forged vote never enters a certificate the router hands out.
          r.distrusted.add(site);
          return void refuse(`commit for seq ${v.seq} claims site ${site} but its signature does not verify (forged or altered); the router left it out of the certificate`);
        }
        r.commits[site] = v;
      }
      return;
    }
  }
}

/**
 * A commit (or prepare) vote for a round that returned before this site's vote came in (it got
 * the round's hop 4 late, with a later round's messages): late, not a replay. A site that handed
 * in such a vote for that round already, or was caught forging one, gets no such benefit.
 */
function lateVote<T>(s: RouterState<T>, site: SiteId, type: string, v: SignedVote): boolean {
  const past = s.finished.find((x) => x.seq === v.seq && x.view === v.view);
  if (past === undefined || past.distrusted.has(site)) return false;
  if (type === 'commit') return !past.commits[site];
  // A prepare for a finished round from a site that got its pre-prepare late (hop 4 carries it).
  return type === 'prepare' && !past.prepareVotes.some((x) => x.site === site);
}

/**
 * Two digests signed by one site for one (type, view, seq): the router does not check prepare
 * signatures, so it hands both votes to another site, which verifies them and returns the proof.
 */
function watchForEquivocation<T>(s: RouterState<T>, site: SiteId, type: string, v: SignedVote): void {
  const key = `${site}|${type}|${v.view}|${v.seq}`;
  const first = s.firstVotes.get(key);
  if (!first) {
    s.firstVotes.set(key, v);
    return;
  }
  if (first.digest === v.digest || s.witnessed.has(key) || (type !== 'prepare' && type !== 'commit')) return;
  s.witnessed.add(key);
  const witness = s.members.find((m) => m !== site && s.failing[m] === undefined);
  if (!witness) return;
  forwardTo(s, witness, [first, v].map((vote) => ({ type: type as 'prepare' | 'commit', to: witness, vote })));
}
