/**
 * The BFT side of a federation round, in workflow code. The sites are PBFT replicas
 * (core/consensus/bft-replica.ts) that sign and check votes with their own keys; this workflow
 * holds no key and checks no signature: it only routes votes between site task queues and counts
 * them, which is why it never trusts a count it has not had confirmed by a site.
 *
 * One round, workflow-mediated hops, every site in parallel within a hop:
 *   1. propose    → the primary (members[view mod n]) signs a pre-prepare;
 *   2. pre-prepare → each backup checks it and signs a prepare;
 *   3. prepares (all of them, routed in one bundle per site) → each site, once prepared, signs a commit;
 *   4. the certificate's 2f+1 commit votes → each site verifies them and commits.
 * With the members' public keys (`publicKeys`), the router verifies each commit vote itself in
 * pure JavaScript (core/consensus/ed25519-verifier.ts) and the round is done after hop 3, once it
 * holds 2f+1 commit votes that verify: that is the commit certificate, checkable by anyone with the
 * keys. Hop 4 still runs, after the round returns: the votes go to the sites through the forward
 * queue, ahead of the next round's messages. Without keys, the round waits for hop 4 and is done
 * when f+1 sites report the sequence committed having refused none of the certificate's votes: at
 * least one of them is honest, so every vote in it verified with its site's public key (PBFT's
 * client likewise waits for f+1 matching replies).
 *
 * Views: a round's primary that does not answer the propose is skipped by moving to the next view
 * whose primary answers. This replaces PBFT's view change and is safe here because every vote
 * passes through this workflow: it knows no site can have prepared anything in the abandoned view.
 */
import { condition } from '@temporalio/workflow';
import type { BftBatch, BftDeliverResult, BftMsg } from '../../core/contracts/consensus-payloads';
import { makeCertificate } from '../../core/consensus/bft-certificate';
import { primaryOf } from '../../core/consensus/bft-replica-state';
import type { EquivocationProof, SignedVote } from '../../core/consensus/bft-types';
import { digestOf } from '../../core/consensus/canonical-json';
import { bftSizes } from '../../core/consensus/quorum';
import { voteSignatureValid } from '../../core/consensus/bft-votes';
import { pureEd25519Verifier } from '../../core/consensus/ed25519-verifier';
import type { Verifier } from '../../core/consensus/signing';
import { describeQuorumWait, hasQuorum, quorumWait } from '../../core/consensus/quorum-wait';
import type { SiteId } from '../../core/consensus/types';
import { siteConsensus, SitePump, tickMs } from './links';
import type { BftCertificate, RttTable } from '../../core/contracts/federation';

export interface BftDriverOptions {
  federation: string;
  /** In the order every site uses: it fixes each view's primary. */
  members: SiteId[];
  view: number;
  rttMs?: RttTable;
  /**
   * The members' public keys (base64 SPKI DER). Given, the router verifies commit votes itself and
   * a round is done one hop earlier (see above); absent, it waits for sites to confirm.
   */
  publicKeys?: Readonly<Record<SiteId, string>>;
  onWaiting(status: string): void;
  onEquivocation(proof: EquivocationProof, reportedBy: SiteId): void;
  onRefusal(reportedBy: SiteId, reason: string, accused?: SiteId): void;
}

interface Round {
  batch: BftBatch;
  digest: string;
  view: number;
  primary: SiteId;
  proposed: boolean;
  abandoned: boolean;
  seq?: number;
  prePrepare?: SignedVote;
  /** Every distinct prepare vote seen for this sequence, matching or not: honest sites need to see conflicting ones to prove equivocation. */
  prepareVotes: SignedVote[];
  /** Sites that signed a prepare (so hold the pre-prepare), and those whose prepare matches the digest. */
  ppAcked: Set<SiteId>;
  matching: Set<SiteId>;
  commits: Record<SiteId, SignedVote>;
  /** Sites whose commit vote some site refused as forged: left out of the certificate. */
  distrusted: Set<SiteId>;
  certVotes?: SignedVote[];
  confirmed: Set<SiteId>;
  /** The stage last delivered to each site, so a stage goes out once per site until a retransmit. */
  delivered: Record<SiteId, number>;
}

/** A site's answer, with the sequence the call was made for (undefined: before the pre-prepare). */
type Reply = BftDeliverResult & { forSeq?: number };

/** Catch-up certificates waiting for a site, capped so a long-dead site cannot grow the workflow. */
const MAX_FORWARD = 64;

export class BftDriver {
  view: number;
  readonly f: number;
  readonly quorum: number;
  private round?: Round;
  private readonly pump: SitePump<Reply>;
  private readonly forward = new Map<SiteId, BftMsg[]>();
  /** Per site, how far it has executed in the current view (from its replies). */
  private readonly executed: Record<SiteId, number> = {};
  private readonly tick: number;
  private readonly liveWindowMs: number;
  /** The first vote of each site per `type:view:seq`, to spot a site that signs two digests. */
  private readonly firstVotes = new Map<string, SignedVote>();
  private readonly witnessed = new Set<string>();
  private readonly verifier?: Verifier;
  /** A round done on the router's own check, whose sites are still being told (hop 4), until f+1 confirm. */
  private finishing?: Round;
  /** Rounds whose hop 4 went out after they returned (the last few): a late honest commit vote for one is not a replay. */
  private readonly finished: Round[] = [];

  constructor(private readonly o: BftDriverOptions) {
    this.view = o.view;
    ({ f: this.f, quorum: this.quorum } = bftSizes(o.members.length));
    if (o.publicKeys) this.verifier = pureEd25519Verifier(o.publicKeys);
    const acts = Object.fromEntries(o.members.map((m) => [m, siteConsensus(m, o.rttMs)]));
    this.tick = tickMs('bft', o.members, this.quorum, o.rttMs);
    this.liveWindowMs = Math.max(2_000, 3 * this.tick);
    this.pump = new SitePump<Reply>(
      {
        next: (site) => {
          const batch = this.nextFor(site);
          if (!batch) return undefined;
          const view = this.view;
          const forSeq = this.round?.seq;
          return async () => ({ ...(await acts[site]!.bftDeliver({ federation: o.federation, view, members: o.members, ...batch })), forSeq });
        },
        reply: (site, r) => this.onReply(site, r),
        failed: (site) => {
          const r = this.round;
          // A propose that got no answer may or may not have been signed: never re-propose in this view.
          if (r && site === r.primary && !r.prePrepare) r.abandoned = true;
        },
      },
      this.tick,
      // Two: a site still answering the previous round's last stage must not hold up this round's
      // first one. Each delivery steps the replica synchronously, so they never interleave at the site.
      2,
    );
  }

  /** Commits one batch; resolves with the certificate once f+1 sites confirmed it. */
  async commit(batch: BftBatch): Promise<BftCertificate & { view: number; seq: number }> {
    const digest = digestOf(batch);
    this.view = this.nextView(this.view);
    for (;;) {
      const primary = primaryOf(this.o.members, this.view);
      const r: Round = {
        batch, digest, view: this.view, primary, proposed: false, abandoned: false, prepareVotes: [], ppAcked: new Set(), matching: new Set(),
        commits: {}, distrusted: new Set(), confirmed: new Set(), delivered: {},
      };
      this.round = r;
      this.pump.kickAll(this.o.members);
      while (!this.done(r) && !r.abandoned) {
        if (await condition(() => this.done(r) || r.abandoned, this.tick)) break;
        r.delivered = {}; // retransmit the current stage to every site that has not moved on
        this.pump.kickAll(this.o.members);
        this.reportWait();
      }
      if (this.done(r)) {
        this.round = undefined;
        this.firstVotes.clear();
        if (this.verifier) this.finish(r);
        else this.catchUp(r);
        const certificate = makeCertificate(r.view, r.seq!, digest, r.certVotes!);
        return { protocol: 'bft', certificate, members: [...this.o.members], view: r.view, seq: r.seq! };
      }
      this.view = this.nextView(this.view + 1);
      for (const k of Object.keys(this.executed)) delete this.executed[k];
      this.o.onWaiting(`primary ${primary} of view ${r.view} did not answer; retrying in view ${this.view} (primary ${primaryOf(this.o.members, this.view)})`);
    }
  }

  /** True while catch-up messages wait for a site. */
  get lagging(): boolean {
    return this.forward.size > 0 || this.finishing !== undefined;
  }

  /** True while a round that returned on the router's own check has not been confirmed by f+1 sites (hop 4 still going out). */
  get finishingRound(): boolean {
    return this.finishing !== undefined;
  }

  /** While idle: deliver pending catch-up certificates. */
  heartbeat(): void {
    // Hop 4 of a returned round goes out once through the forward queue; a delivery that failed
    // took its messages with it, so send them again to the sites that have not confirmed.
    const fin = this.finishing;
    if (fin) {
      for (const site of this.o.members) {
        if (fin.confirmed.has(site) || this.forward.has(site) || this.pump.inFlight(site)) continue;
        const messages = this.stageMessages(fin, site, 3);
        if (messages.length) this.forward.set(site, messages);
      }
    }
    this.pump.kickAll(this.o.members);
  }

  private done(r: Round): boolean {
    if (r.certVotes === undefined) return false;
    // Every vote in certVotes verified at the router when it has the keys (see onReply).
    return this.verifier !== undefined || r.confirmed.size >= this.f + 1;
  }

  /** Hop 4 after the round returned: each site that has not confirmed gets what it lacks, ahead of any later round. */
  private finish(r: Round): void {
    for (const site of this.o.members) {
      // Sites that already have hop 4 (sent when the votes came in) are not sent it twice.
      if (r.confirmed.has(site) || (r.delivered[site] ?? 0) >= 3) continue;
      const messages = this.stageMessages(r, site, 3);
      if (!messages.length) continue;
      const q = this.forward.get(site) ?? [];
      q.push(...messages);
      this.forward.set(site, q);
    }
    this.finishing = r.confirmed.size >= this.f + 1 ? undefined : r;
    if (!this.finishing) this.catchUp(r);
    this.finished.push(r);
    if (this.finished.length > 8) this.finished.shift();
    this.pump.kickAll(this.o.members);
  }

  /**
   * A commit (or prepare) vote for a round that returned before this site's vote came in (it got
   * the round's hop 4 late, with a later round's messages): late, not a replay. A site that handed
   * in such a vote for that round already, or was caught forging one, gets no such benefit.
   */
  private lateVote(site: SiteId, type: string, v: SignedVote): boolean {
    const past = this.finished.find((x) => x.seq === v.seq && x.view === v.view);
    if (past === undefined || past.distrusted.has(site)) return false;
    if (type === 'commit') return !past.commits[site];
    // A prepare for a finished round from a site that got its pre-prepare late (hop 4 carries it).
    return type === 'prepare' && !past.prepareVotes.some((x) => x.site === site);
  }

  /** The votes of `stage` that `site` lacks for round `r`. */
  private stageMessages(r: Round, site: SiteId, stage: number): BftMsg[] {
    const messages: BftMsg[] = [];
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

  private reportWait(): void {
    const wait = quorumWait(this.o.members, this.pump.lastHeard, Date.now() - this.liveWindowMs, this.quorum);
    this.o.onWaiting(hasQuorum(wait) ? `committing: ${describeQuorumWait(wait)}` : describeQuorumWait(wait));
  }

  /** The first view from `from` whose primary is not failing, so a dead primary is skipped. */
  private nextView(from: number): number {
    const n = this.o.members.length;
    for (let v = from; v < from + n; v++) if (this.pump.failing[primaryOf(this.o.members, v)] === undefined) return v;
    return from;
  }

  private stage(r: Round): number {
    if (r.certVotes) return 3;
    if (r.matching.size >= this.quorum - 1) return 2;
    return r.prePrepare ? 1 : 0;
  }

  /** What `site` needs now: the batch to propose (primary), or the votes of the current stage it lacks. */
  private nextFor(site: SiteId): { propose?: BftBatch; messages: BftMsg[] } | undefined {
    const fwd = this.forward.get(site) ?? [];
    this.forward.delete(site);
    const r = this.round;
    if (!r) return fwd.length ? { messages: fwd } : undefined;
    if (!r.prePrepare) {
      if (site !== r.primary || r.proposed) return fwd.length ? { messages: fwd } : undefined;
      r.proposed = true;
      return { propose: r.batch, messages: fwd };
    }
    const stage = this.stage(r);
    if ((r.delivered[site] ?? 0) >= stage) return fwd.length ? { messages: fwd } : undefined;
    const messages: BftMsg[] = [...fwd, ...this.stageMessages(r, site, stage)];
    r.delivered[site] = stage;
    if (messages.length) return { messages };
    // Nothing new for this site, but a round waits on it: an empty delivery keeps its liveness (and
    // so the `waiting for quorum: k of n sites reachable` count) current.
    return Date.now() - (this.pump.lastHeard[site] ?? -Infinity) >= this.tick ? { messages } : undefined;
  }

  private onReply(site: SiteId, res: Reply): void {
    if (res.view !== this.view) return;
    this.executed[site] = res.executed;
    const fin = this.finishing;
    if (fin && res.committed.some((c) => c.seq === fin.seq && c.digest === fin.digest)) {
      fin.confirmed.add(site);
      if (fin.confirmed.size >= this.f + 1) {
        this.finishing = undefined;
        this.catchUp(fin);
      }
    }
    for (const p of res.equivocations) this.o.onEquivocation(p, site);
    let accusesCert = false;
    for (const rf of res.refused) {
      this.o.onRefusal(site, rf.reason, rf.site);
      const r = this.round;
      // With the keys, the router verified every vote of the certificate itself: a site's claim that
      // one does not verify is recorded (above) but cannot evict an honest site's vote.
      if (!this.verifier && r?.certVotes && rf.site && /signature does not verify/.test(rf.reason) && r.certVotes.some((v) => v.site === rf.site)) {
        accusesCert = true;
        // Some site says this commit vote is forged: leave it out and build the certificate again.
        r.distrusted.add(rf.site);
        delete r.commits[rf.site];
        r.certVotes = undefined;
        r.confirmed.clear();
        r.delivered = {};
      }
    }
    const r = this.round;
    for (const m of res.messages) {
      if (m.type === 'certificate') {
        // Self-verifying catch-up for a lagging site: pass it on.
        const q = this.forward.get(m.to) ?? [];
        if (q.length < MAX_FORWARD) q.push(m);
        this.forward.set(m.to, q);
        continue;
      }
      if (m.type === 'status' || !r) continue;
      const v = m.vote;
      if (v.type !== m.type) {
        // A vote is what it signs: a prepare handed in as a commit (or the reverse) is not routed.
        this.o.onRefusal('router', `${m.type} message from ${site} carries a ${v.type} vote (not routed)`, site);
        continue;
      }
      // A site speaks for itself only: a vote it hands in for another site is not routed.
      if (v.site !== site) {
        this.o.onRefusal('router', `${m.type} from ${site} claims to be signed by ${v.site}; a site can only hand in its own votes (not routed)`, site);
        continue;
      }
      if (v.seq !== res.forSeq && this.lateVote(site, m.type, v)) continue;
      if (res.forSeq !== undefined && v.seq !== res.forSeq) {
        // An honest site answers for the sequence it was asked about; an older one is a replay.
        this.o.onRefusal('router', `replayed ${m.type} from ${site} for view ${v.view} seq ${v.seq}; it was asked about seq ${res.forSeq} (not routed)`, site);
        continue;
      }
      if (v.view !== r.view || (r.seq !== undefined && v.seq !== r.seq)) continue; // a late answer from an earlier round
      this.watchForEquivocation(site, m.type, v);
      if (m.type === 'pre-prepare') {
        if (site === r.primary && !r.prePrepare && v.digest === r.digest) {
          r.prePrepare = v;
          r.seq = v.seq;
        }
        continue;
      }
      if (r.seq === undefined || v.seq !== r.seq) continue;
      if (m.type === 'prepare') {
        if (!r.prepareVotes.some((x) => x.sig === v.sig)) r.prepareVotes.push(v);
        r.ppAcked.add(site);
        if (v.digest === r.digest && site !== r.primary) r.matching.add(site);
      } else if (m.type === 'commit' && v.digest === r.digest && !r.distrusted.has(site) && !r.commits[site]) {
        if (this.verifier && !voteSignatureValid(this.verifier, v)) {
          // Checked here, so a forged vote never enters a certificate the router hands out.
          r.distrusted.add(site);
          this.o.onRefusal('router', `commit for seq ${v.seq} claims site ${site} but its signature does not verify (forged or altered); the router left it out of the certificate`, site);
          continue;
        }
        r.commits[site] = v;
      }
    }
    if (r && r.seq !== undefined) {
      if (!r.certVotes && this.stage(r) >= 2) {
        const votes = Object.values(r.commits);
        if (votes.length >= this.quorum) r.certVotes = makeCertificate(r.view, r.seq, r.digest, votes).votes.slice(0, this.quorum);
      }
      if (r.certVotes && !accusesCert && res.committed.some((c) => c.seq === r.seq && c.digest === r.digest)) r.confirmed.add(site);
    }
    this.pump.kickAll(this.o.members);
  }

  /**
   * Two digests signed by one site for one (type, view, seq): the router cannot check signatures,
   * so it hands both votes to another site, which verifies them and returns the proof.
   */
  private watchForEquivocation(site: SiteId, type: string, v: SignedVote): void {
    const key = `${site}|${type}|${v.view}|${v.seq}`;
    const first = this.firstVotes.get(key);
    if (!first) {
      this.firstVotes.set(key, v);
      return;
    }
    if (first.digest === v.digest || this.witnessed.has(key) || (type !== 'prepare' && type !== 'commit')) return;
    this.witnessed.add(key);
    const witness = this.o.members.find((m) => m !== site && this.pump.failing[m] === undefined);
    if (!witness) return;
    const q = this.forward.get(witness) ?? [];
    for (const vote of [first, v]) q.push({ type: type as 'prepare' | 'commit', to: witness, vote });
    this.forward.set(witness, q);
  }

  /** Sites that did not execute the round's sequence get certificates from one that did, through its `status` answer. */
  private catchUp(r: Round): void {
    const helper = [...r.confirmed].find((s) => (this.executed[s] ?? 0) >= r.seq!);
    if (!helper) return;
    for (const s of this.o.members) {
      const e = this.executed[s];
      if (s === helper || e === undefined || e >= r.seq!) continue;
      const q = this.forward.get(helper) ?? [];
      q.push({ type: 'status', to: helper, from: s, executed: e });
      this.forward.set(helper, q);
    }
    this.pump.kick(helper);
  }
}
