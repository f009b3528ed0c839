/**
 * How a consensus round reaches the sites: one activity per site per step, on the site's own task
 * queue, at most one in flight per site. A site whose worker is down simply does not answer: its
 * activity times out (no Temporal retry, the protocols retransmit themselves) and the round
 * goes on with the sites that do answer, or waits for quorum and says so.
 *
 * Timeouts scale with the predicted round-trip time of the links (core/consensus/timeouts.ts),
 * so a long link does not fire retransmissions too early and a short one does not wait too long.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ConsensusActivities } from '../../activities/consensus';
import { roundTimeoutTicks } from '../../core/consensus/timeouts';
import type { Protocol, SiteId } from '../../core/consensus/types';
import type { RttTable } from '../../core/contracts/federation';
import { siteTaskQueue } from '../../core/contracts/task-queues';

/** The RTT assumed for a pair nobody predicted: sites in one region, or one machine. */
export const DEFAULT_RTT_MS = 5;
/** Per-activity allowance on top of the link: scheduling, a workflow task, an fsync on a busy disk. */
const ACTIVITY_BASE_MS = 2_000;
/** Time a round waits before it retransmits and re-checks quorum, on top of the links' share. */
const TICK_BASE_MS = 250;
/** Workflow-mediated hops per round: CFT append+ack is one; BFT is propose, pre-prepare, prepare, commit. */
const HOPS: Record<Protocol, number> = { cft: 1, bft: 4 };

/** The predicted RTT between the workflow's round and `site`: the slowest pair the site is in. */
export function rttToSite(site: SiteId, table: RttTable | undefined): number {
  let worst: number | undefined;
  for (const [pair, ms] of Object.entries(table ?? {})) {
    const [a, b] = pair.split('|');
    if (a === site || b === site) worst = Math.max(worst ?? 0, ms);
  }
  return worst ?? DEFAULT_RTT_MS;
}

/** How long one delivery to `site` may take before the site counts as not answering. */
export function activityTimeoutMs(site: SiteId, table: RttTable | undefined): number {
  return ACTIVITY_BASE_MS + 4 * rttToSite(site, table);
}

/** Ms between a waiting round's retransmissions: base + hops × the quorum-th fastest site's RTT. */
export function tickMs(protocol: Protocol, members: readonly SiteId[], quorum: number, table: RttTable | undefined): number {
  return roundTimeoutTicks({ baseTicks: TICK_BASE_MS, k: HOPS[protocol], rttTicks: members.map((m) => rttToSite(m, table)), quorum });
}

/** The consensus activities of one site, with its timeout and no automatic retry. */
export function siteConsensus(site: SiteId, table: RttTable | undefined): ConsensusActivities {
  return proxyActivities<ConsensusActivities>({
    taskQueue: siteTaskQueue(site),
    scheduleToCloseTimeout: activityTimeoutMs(site, table),
    // One attempt: a lost delivery is the protocol's business (it retransmits on its next tick
    // with fresher messages), not Temporal's, which would resend a stale one.
    retry: { maximumAttempts: 1 },
  });
}

export interface PumpHooks<R> {
  /** The call to make to `site` now, or undefined when it has nothing new to hear. */
  next(site: SiteId): (() => Promise<R>) | undefined;
  reply(site: SiteId, r: R): void;
  failed(site: SiteId, err: unknown): void;
}

/**
 * At most `maxInFlight` deliveries in flight per site (so a dead site holds that many activities,
 * not one per round); a site whose delivery failed is tried again after `backoffMs`, on a kick.
 */
export class SitePump<R> {
  private readonly busy = new Map<SiteId, number>();
  private readonly retryAt = new Map<SiteId, number>();
  /** Workflow time of each site's last answer. */
  readonly lastHeard: Record<SiteId, number> = {};
  /** Sites whose last delivery failed, since when. */
  readonly failing: Record<SiteId, number> = {};

  constructor(
    private readonly hooks: PumpHooks<R>,
    private readonly backoffMs: number,
    private readonly maxInFlight = 1,
  ) {}

  inFlight(site: SiteId): boolean {
    return (this.busy.get(site) ?? 0) > 0;
  }

  kick(site: SiteId): void {
    if ((this.busy.get(site) ?? 0) >= this.maxInFlight) return; // kicked again when a delivery ends
    const at = this.retryAt.get(site);
    if (at !== undefined && Date.now() < at) return;
    const call = this.hooks.next(site);
    if (!call) return;
    this.busy.set(site, (this.busy.get(site) ?? 0) + 1);
    call()
      .then(
        (r) => {
          this.lastHeard[site] = Date.now();
          delete this.failing[site];
          this.retryAt.delete(site);
          this.hooks.reply(site, r);
        },
        (err) => {
          this.failing[site] ??= Date.now();
          this.retryAt.set(site, Date.now() + this.backoffMs);
          this.hooks.failed(site, err);
        },
      )
      .finally(() => {
        this.busy.set(site, (this.busy.get(site) ?? 1) - 1);
        this.kick(site);
      });
  }

  kickAll(sites: readonly SiteId[]): void {
    for (const s of sites) this.kick(s);
  }
}
