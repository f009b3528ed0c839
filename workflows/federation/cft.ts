/**
 * The CFT side of a federation round, in workflow code: this workflow run is the Raft-style
 * leader (core/consensus/cft-leader.ts) for one term, its leader epoch, and the trusted sites
 * are the followers. A round is one hop when the leader already leads: append to every site in
 * parallel, commit at the majority's acks. The first round of a run also wins the term (one
 * more hop). Commit indexes reach the sites with the next append or an idle heartbeat.
 */
import { ApplicationFailure, condition } from '@temporalio/workflow';
import type { CftDeliverResult, CftMsg } from '../../core/contracts/consensus-payloads';
import { leaderQuorumWait, proposeLeader, startLeader, stepLeader, tickLeader, type CftReady, type LeaderState, type LogEntry } from '../../core/consensus/cft';
import type { FederationEntry } from '../../core/consensus/entries';
import { majority } from '../../core/consensus/quorum';
import { describeQuorumWait, hasQuorum } from '../../core/consensus/quorum-wait';
import type { SiteId } from '../../core/consensus/types';
import { siteConsensus, SitePump, tickMs } from './links';
import type { CftCertificate, RttTable } from '../../core/contracts/federation';
import { FailureType } from '../../core/contracts/failures';

export const LEADER_SUPERSEDED = FailureType.LeaderSuperseded;

export interface CftDriverOptions {
  federation: string;
  /** The leader's name; sites grant each term to one name only. */
  leaderId: string;
  term: number;
  members: SiteId[];
  /** The committed prefix this leader already holds. */
  base: LogEntry<FederationEntry>[];
  rttMs?: RttTable;
  /** Every entry that commits, in log order, once (including entries a previous epoch left uncommitted). */
  onCommitted(entries: LogEntry<FederationEntry>[]): void;
  /** Called on each waiting tick with e.g. `waiting for quorum: 1 of 3 sites reachable, need 2`. */
  onWaiting(status: string): void;
}

/** Entries per append: a batch round goes out in one message per site. */
const MAX_APPEND = 4096;

export class CftDriver {
  readonly leader: LeaderState<FederationEntry>;
  private readonly pump: SitePump<CftDeliverResult>;
  /** The latest message for each site: a newer append carries everything an older one did. */
  private readonly pending = new Map<SiteId, CftMsg>();
  private readonly knownCommit: Record<SiteId, number> = {};
  /** Sites whose pending message only carries the commit index: sent on a tick or heartbeat, not at once. */
  private readonly lazy = new Set<SiteId>();
  private flushing = false;
  private appliedIndex: number;
  private readonly tick: number;

  constructor(private readonly o: CftDriverOptions) {
    const acts = Object.fromEntries(o.members.map((m) => [m, siteConsensus(m, o.rttMs)]));
    this.tick = tickMs('cft', o.members, majority(o.members.length), o.rttMs);
    this.appliedIndex = o.base.length;
    this.pump = new SitePump<CftDeliverResult>(
      {
        next: (site) => {
          const m = this.pending.get(site);
          if (!m || (this.lazy.has(site) && !this.flushing)) return undefined;
          this.pending.delete(site);
          this.lazy.delete(site);
          return () => acts[site]!.cftDeliver({ federation: o.federation, messages: [m] });
        },
        reply: (site, r) => {
          this.knownCommit[site] = r.commit;
          for (const m of r.replies) this.handle(stepLeader(this.leader, m));
        },
        failed: () => undefined, // the next tick retransmits
      },
      this.tick,
    );
    const { state, ready } = startLeader<FederationEntry>({
      id: o.leaderId, term: o.term, members: o.members, base: o.base, maxBatch: MAX_APPEND, heartbeatTicks: 2, liveWindowTicks: 6,
    });
    this.leader = state;
    this.handle(ready);
  }

  get deposed(): boolean {
    return this.leader.phase === 'deposed';
  }

  /** The committed log, for the next run's base. */
  committedLog(): LogEntry<FederationEntry>[] {
    return this.leader.phase === 'leading' ? this.leader.log.slice(0, this.leader.commit) : this.o.base;
  }

  /** Commits `entries` in one round; resolves with the majority's acks as certificate. */
  async commit(entries: readonly FederationEntry[]): Promise<CftCertificate> {
    await this.waitFor(() => this.leader.phase !== 'campaign');
    this.assertLeading();
    const firstIndex = this.leader.log.length + 1;
    for (const e of entries) this.handle(proposeLeader(this.leader, e));
    const target = this.leader.log.length;
    await this.waitFor(() => this.leader.commit >= target);
    this.assertLeading();
    const ackedBy = this.o.members.filter((s) => (this.leader.progress[s]?.match ?? 0) >= target).sort();
    return { protocol: 'cft', term: this.leader.term, index: target, firstIndex, ackedBy };
  }

  /** True while some site has not confirmed the latest commit index. */
  get lagging(): boolean {
    return this.leader.phase === 'leading' && this.o.members.some((s) => (this.knownCommit[s] ?? 0) < this.leader.commit);
  }

  /** While idle: tell sites that lag behind the commit index (one heartbeat), so their logs apply it. */
  heartbeat(): void {
    if (!this.lagging) return;
    for (let i = 0; i < this.leader.heartbeatTicks; i++) {
      const ready = tickLeader(this.leader);
      if (ready.messages.length) {
        this.handle(ready);
        break;
      }
    }
    this.flush();
  }

  private assertLeading(): void {
    if (this.leader.phase === 'leading') return;
    const by = this.leader.deposedBy;
    throw ApplicationFailure.nonRetryable(
      `federation ${this.o.federation}: leader ${this.o.leaderId} of term ${this.leader.term} was superseded` +
        (by ? ` (site ${by.site} is at term ${by.term}: ${by.reason})` : '') + '; a newer run leads, so this one may not write',
      LEADER_SUPERSEDED,
    );
  }

  private async waitFor(done: () => boolean): Promise<void> {
    while (!done() && !this.deposed) {
      if (await condition(() => done() || this.deposed, this.tick)) break;
      this.handle(tickLeader(this.leader));
      this.flush();
      const wait = leaderQuorumWait(this.leader);
      // Enough sites answer but the round has not finished: it is slow, not blocked.
      this.o.onWaiting(hasQuorum(wait) ? `committing: ${describeQuorumWait(wait)}` : describeQuorumWait(wait));
    }
  }

  private handle(ready: CftReady<FederationEntry>): void {
    const fresh = ready.committed.filter((e) => e.index > this.appliedIndex);
    if (fresh.length) {
      this.appliedIndex = fresh[fresh.length - 1]!.index;
      this.o.onCommitted(fresh);
    }
    for (const m of ready.messages) {
      this.pending.set(m.to, m);
      // An append without entries only carries the commit index: it waits for the next append (which
      // supersedes it) or a tick or the idle heartbeat, rather than occupy the site when the next round starts.
      if (m.type === 'append' && m.entries.length === 0) this.lazy.add(m.to);
      else this.lazy.delete(m.to);
    }
    for (const m of ready.messages) this.pump.kick(m.to);
  }

  /** Sends every pending message, commit-only ones included. */
  private flush(): void {
    this.flushing = true;
    try {
      this.pump.kickAll(this.o.members);
    } finally {
      this.flushing = false;
    }
  }
}
