/**
 * The BFT side of a federation round, in workflow code: a thin shell over the pure router
 * (core/consensus/bft-router.ts), which decides what goes to which site and counts the votes.
 * This file only turns the router's deliveries into one activity per site on the site's task
 * queue, feeds the answers back as events with the workflow's clock, waits in ticks, and passes
 * the router's reports on. The sites are PBFT replicas that sign and check votes with their own
 * keys; the workflow holds no key.
 *
 * The promise chain of a delivery (answer or failure, then 'settled') is the one the shared
 * SitePump uses (links.ts), so deliveries start at the same points of a workflow task as before
 * the router became a step function: recorded histories replay.
 */
import { condition } from '@temporalio/workflow';
import type { BftBatch } from '../../core/contracts/consensus-payloads';
import { changeView, closeRound, openRound, roundOutcome, routerQuorumWait, startRound, stepRouter, type RouterEvent } from '../../core/consensus/bft-router';
import { createRouter, type Delivery, type Router, type RouterReady } from '../../core/consensus/bft-router-state';
import type { EquivocationProof } from '../../core/consensus/bft-types';
import { pureEd25519Verifier } from '../../core/consensus/ed25519-verifier';
import { bftSizes } from '../../core/consensus/quorum';
import { describeQuorumWait, hasQuorum } from '../../core/consensus/quorum-wait';
import type { SiteId } from '../../core/consensus/types';
import type { ConsensusActivities } from '../../activities/consensus';
import { siteConsensus, tickMs } from './links';
import type { BftCertificate, RttTable } from '../../core/contracts/federation';

export interface BftDriverOptions {
  federation: string;
  /** In the order every site uses: it fixes each view's primary. */
  members: SiteId[];
  view: number;
  rttMs?: RttTable;
  /**
   * The members' public keys (base64 SPKI DER). Given, the router verifies commit votes itself and
   * a round is done one hop earlier (see bft-router.ts); absent, it waits for sites to confirm.
   */
  publicKeys?: Readonly<Record<SiteId, string>>;
  onWaiting(status: string): void;
  onEquivocation(proof: EquivocationProof, reportedBy: SiteId): void;
  onRefusal(reportedBy: SiteId, reason: string, accused?: SiteId): void;
}

/**
 * Two deliveries in flight per site: a site still answering the previous round's last stage must
 * not hold up this round's first one. Each delivery steps the replica synchronously, so they never
 * interleave at the site.
 */
const MAX_IN_FLIGHT = 2;
/** A site not heard from within this long (or three ticks, if longer) counts as unreachable. */
const LIVE_WINDOW_MS = 2_000;

export class BftDriver {
  private readonly router: Router<BftBatch>;
  private readonly acts: Record<SiteId, ConsensusActivities>;
  private readonly tick: number;

  constructor(private readonly o: BftDriverOptions) {
    this.tick = tickMs('bft', o.members, bftSizes(o.members.length).quorum, o.rttMs);
    const verifier = o.publicKeys ? pureEd25519Verifier(o.publicKeys) : undefined;
    this.router = createRouter<BftBatch>(
      { members: o.members, view: o.view, tickLength: this.tick, liveWindow: Math.max(LIVE_WINDOW_MS, 3 * this.tick), maxInFlight: MAX_IN_FLIGHT },
      verifier,
    );
    this.acts = Object.fromEntries(o.members.map((m) => [m, siteConsensus(m, o.rttMs)]));
  }

  get view(): number {
    return this.router.state.view;
  }

  /** True while a round that returned on the router's own check has not been confirmed by f+1 sites (hop 4 still going out). */
  get finishingRound(): boolean {
    return this.router.state.finishing !== undefined;
  }

  /** Commits one batch; resolves with its certificate (see bft-router.ts for when a round is done). */
  async commit(batch: BftBatch): Promise<BftCertificate & { view: number; seq: number }> {
    this.apply(startRound(this.router, batch, Date.now()));
    const decided = () => roundOutcome(this.router) !== 'open';
    for (;;) {
      while (!decided()) {
        if (await condition(decided, this.tick)) break;
        this.step({ type: 'tick', now: Date.now() });
        this.reportWait();
      }
      if (roundOutcome(this.router) === 'done') {
        const { ready, certificate, view, seq } = closeRound(this.router, Date.now());
        this.apply(ready);
        return { protocol: 'bft', certificate, members: [...this.o.members], view, seq };
      }
      // The status goes out before the new view's propose, as it always has.
      this.o.onWaiting(changeView(this.router));
      this.apply(openRound(this.router, batch, Date.now()));
    }
  }

  /** While idle: deliver pending catch-up certificates and a returned round's hop 4. */
  heartbeat(): void {
    this.step({ type: 'heartbeat', now: Date.now() });
  }

  private reportWait(): void {
    const wait = routerQuorumWait(this.router.state, Date.now());
    this.o.onWaiting(hasQuorum(wait) ? `committing: ${describeQuorumWait(wait)}` : describeQuorumWait(wait));
  }

  private step(e: RouterEvent<BftBatch>): void {
    this.apply(stepRouter(this.router, e));
  }

  private apply(ready: RouterReady<BftBatch>): void {
    for (const r of ready.reports) {
      if (r.type === 'equivocation') this.o.onEquivocation(r.proof, r.reportedBy);
      else this.o.onRefusal(r.reportedBy, r.reason, r.accused);
    }
    for (const d of ready.deliveries) this.deliver(d);
  }

  /** One activity; no Temporal retry (links.ts): a lost delivery is the router's to resend. */
  private deliver(d: Delivery<BftBatch>): void {
    const { site, view, forSeq, ...rest } = d;
    const call = async () => ({ ...(await this.acts[site]!.bftDeliver({ federation: this.o.federation, view, members: this.o.members, ...rest })), forSeq });
    call()
      .then(
        (reply) => this.step({ type: 'reply', site, reply, now: Date.now() }),
        () => this.step({ type: 'failed', site, now: Date.now() }),
      )
      .finally(() => this.step({ type: 'settled', site, now: Date.now() }));
  }
}
