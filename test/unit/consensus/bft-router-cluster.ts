/**
 * The BFT router (core/consensus/bft-router.ts) and its sites on the in-memory network.
 *
 * A RouterNode plays the federation workflow's part with logical time: it turns the router's
 * deliveries into messages, expires those a site did not answer within `timeoutTicks` (as an
 * activity's scheduleToClose timeout would), and runs the commit loop of workflows/federation/bft.ts
 * (a tick while a round waits, closeRound when done, changeView when the primary is silent).
 * A SiteNode plays the consensus activity: one replica per view, rebuilt from its disk after a
 * restart, propose then step each message, persist, reply.
 */
import assert from 'node:assert/strict';
import { changeView, closeRound, openRound, roundOutcome, startRound, stepRouter, type RouterEvent } from '../../../core/consensus/bft-router';
import { createRouter, type Delivery, type Router, type RouterReady, type RouterReply } from '../../../core/consensus/bft-router-state';
import { proposeReplica, restoreReplica, stepReplica, type BftCommitted, type BftReady, type CommitCertificate, type Replica, type SignedRecord } from '../../../core/consensus/bft';
import type { Signer, Verifier } from '../../../core/consensus/signing';
import { Network, type Node } from './network';

export type RouterMsg =
  | { kind: 'deliver'; id: number; from: 'router'; to: string; d: Delivery<string> }
  | { kind: 'reply'; id: number; from: string; to: 'router'; reply: RouterReply<string> };

interface ViewDisk {
  signed: SignedRecord<string>[];
  committed: BftCommitted<string>[];
}

export class SiteNode implements Node<RouterMsg> {
  private readonly replicas = new Map<number, Replica<string>>();
  constructor(readonly id: string, private readonly cl: RouterCluster, private readonly disk: Map<number, ViewDisk>) {}

  replica(view: number): Replica<string> {
    let r = this.replicas.get(view);
    if (!r) {
      const d = this.disk.get(view) ?? { signed: [], committed: [] };
      this.disk.set(view, d);
      r = restoreReplica(this.cl.crypto.signer(this.id), this.cl.crypto.verifier, { members: this.cl.sites, view }, d.signed, d.committed);
      this.replicas.set(view, r);
    }
    return r;
  }

  receive(m: RouterMsg): RouterMsg[] {
    if (m.kind !== 'deliver') return [];
    const { view, propose, messages } = m.d;
    const r = this.replica(view);
    const all: BftReady<string> = { persist: [], messages: [], committed: [], equivocations: [], refused: [] };
    const merge = (x: BftReady<string>) => {
      for (const k of ['persist', 'messages', 'committed', 'equivocations', 'refused'] as const) (all[k] as unknown[]).push(...x[k]);
    };
    if (propose !== undefined) merge(proposeReplica(r, propose));
    for (const msg of messages) {
      assert.equal(msg.to, this.id, `the router sent ${this.id} a ${msg.type} message for ${msg.to}`);
      merge(stepReplica(r, msg));
    }
    const disk = this.disk.get(view)!;
    disk.signed.push(...all.persist); // persist before replying
    disk.committed.push(...all.committed);
    this.cl.record(this.id, view, all.committed);
    const reply: RouterReply<string> = {
      view, messages: all.messages, committed: all.committed.map((c) => ({ seq: c.seq, digest: c.digest })),
      executed: r.state.executed, equivocations: all.equivocations, refused: all.refused,
    };
    return [{ kind: 'reply', id: m.id, from: this.id, to: 'router', reply }];
  }

  tick(): RouterMsg[] {
    return [];
  }
}

export interface Decided {
  certificate: CommitCertificate;
  view: number;
  seq: number;
  value: string;
  /** Logical time from the batch's round start to its certificate. */
  ticks: number;
}

export class RouterNode implements Node<RouterMsg> {
  readonly router: Router<string>;
  now = 0;
  readonly decided: Decided[] = [];
  readonly statuses: string[] = [];
  readonly reports: RouterReady<string>['reports'] = [];
  private readonly queue: string[] = [];
  private current?: { value: string; startedAt: number; waitUntil: number };
  private nextId = 1;
  private readonly outstanding = new Map<number, { site: string; forSeq?: number; deadline: number }>();

  constructor(readonly cl: RouterCluster, verifier: Verifier | undefined, view: number) {
    this.router = createRouter<string>({ members: cl.sites, view, tickLength: cl.tickLength, liveWindow: 3 * cl.tickLength, maxInFlight: 2 }, verifier);
  }

  propose(value: string): RouterMsg[] {
    this.queue.push(value);
    return this.drive([]);
  }

  get busy(): boolean {
    return this.current !== undefined || this.queue.length > 0;
  }

  receive(m: RouterMsg): RouterMsg[] {
    if (m.kind !== 'reply') return [];
    const o = this.outstanding.get(m.id);
    if (!o) return []; // answered after its timeout: the activity had already failed
    this.outstanding.delete(m.id);
    const out = this.step({ type: 'reply', site: m.from, reply: { ...m.reply, ...(o.forSeq !== undefined ? { forSeq: o.forSeq } : {}) }, now: this.now });
    out.push(...this.step({ type: 'settled', site: m.from, now: this.now }));
    return this.drive(out);
  }

  tick(): RouterMsg[] {
    this.now++;
    const out: RouterMsg[] = [];
    for (const [id, o] of [...this.outstanding]) {
      if (o.deadline > this.now) continue;
      this.outstanding.delete(id);
      out.push(...this.step({ type: 'failed', site: o.site, now: this.now }), ...this.step({ type: 'settled', site: o.site, now: this.now }));
    }
    if (this.current && this.now >= this.current.waitUntil && roundOutcome(this.router) === 'open') {
      this.current.waitUntil = this.now + this.cl.tickLength;
      out.push(...this.step({ type: 'tick', now: this.now }));
    } else if (!this.current && this.now % this.cl.tickLength === 0) {
      out.push(...this.step({ type: 'heartbeat', now: this.now }));
    }
    return this.drive(out);
  }

  /** The commit loop of workflows/federation/bft.ts, run after every event. */
  private drive(out: RouterMsg[]): RouterMsg[] {
    for (;;) {
      if (!this.current) {
        const value = this.queue.shift();
        if (value === undefined) return out;
        this.current = { value, startedAt: this.now, waitUntil: this.now + this.cl.tickLength };
        out.push(...this.send(startRound(this.router, value, this.now)));
        continue;
      }
      const outcome = roundOutcome(this.router);
      if (outcome === 'done') {
        const { ready, certificate, view, seq } = closeRound(this.router, this.now);
        this.decided.push({ certificate, view, seq, value: this.current.value, ticks: this.now - this.current.startedAt });
        this.current = undefined;
        out.push(...this.send(ready));
        continue;
      }
      if (outcome === 'abandoned') {
        this.statuses.push(changeView(this.router));
        this.current.waitUntil = this.now + this.cl.tickLength;
        out.push(...this.send(openRound(this.router, this.current.value, this.now)));
        continue;
      }
      return out;
    }
  }

  private step(e: RouterEvent<string>): RouterMsg[] {
    return this.send(stepRouter(this.router, e));
  }

  private send(ready: RouterReady<string>): RouterMsg[] {
    this.reports.push(...ready.reports);
    return ready.deliveries.flatMap((d) => {
      const id = this.nextId++;
      this.outstanding.set(id, { site: d.site, ...(d.forSeq !== undefined ? { forSeq: d.forSeq } : {}), deadline: this.now + this.cl.timeoutTicks });
      // A lost delivery never reaches the site: it times out like an activity no worker picked up.
      if (this.cl.net.rng.chance(this.cl.loseDeliveries)) return [];
      return [{ kind: 'deliver', id, from: 'router', to: d.site, d } as const];
    });
  }
}

export interface RouterClusterOptions {
  crypto: { signer: (s: string) => Signer; verifier: Verifier };
  /** Give the router the members' keys, so it verifies commit votes itself (done after hop 3). */
  routerVerifies?: boolean;
  view?: number;
  tickLength?: number;
  timeoutTicks?: number;
  /** Chance that a delivery is lost before the site runs it. */
  loseDeliveries?: number;
}

export class RouterCluster {
  readonly net: Network<RouterMsg>;
  readonly crypto: RouterClusterOptions['crypto'];
  readonly tickLength: number;
  readonly timeoutTicks: number;
  readonly loseDeliveries: number;
  /** What each site committed, as `view:seq` → digest; checked for agreement on every commit. */
  private readonly agreed = new Map<string, string>();
  readonly committedAt = new Map<string, BftCommitted<string>[]>();

  constructor(readonly sites: string[], seed: number, o: RouterClusterOptions) {
    this.crypto = o.crypto;
    this.tickLength = o.tickLength ?? 2;
    this.timeoutTicks = o.timeoutTicks ?? 8;
    this.loseDeliveries = o.loseDeliveries ?? 0;
    this.net = new Network<RouterMsg>(seed, (m) => ({ from: m.from, to: m.to }));
    const router = new RouterNode(this, o.routerVerifies ? o.crypto.verifier : undefined, o.view ?? 0);
    this.net.add('router', () => router); // the workflow does not crash here; its restarts are Temporal's
    for (const id of sites) {
      const disk = new Map<number, ViewDisk>();
      this.net.add(id, () => new SiteNode(id, this, disk));
    }
  }

  get router(): RouterNode {
    return this.net.node<RouterNode>('router');
  }

  site(id: string): SiteNode {
    return this.net.node<SiteNode>(id);
  }

  propose(value: string): void {
    this.net.send(this.router.propose(value));
  }

  record(site: string, view: number, committed: readonly BftCommitted<string>[]): void {
    for (const c of committed) {
      const key = `${view}:${c.seq}`;
      const prev = this.agreed.get(key);
      assert.ok(prev === undefined || prev === c.digest, `two values committed at view ${view} seq ${c.seq}: ${prev} and ${c.digest} (reported by ${site})`);
      this.agreed.set(key, c.digest);
      this.committedAt.set(site, [...(this.committedAt.get(site) ?? []), c]);
    }
  }

  values(site: string): string[] {
    return (this.committedAt.get(site) ?? []).map((c) => c.value);
  }

  /** Runs until every proposal has a certificate; fails with the router's last status if it never does. */
  runUntilDecided(maxSteps = 20_000): void {
    const steps = this.net.runUntil(() => !this.router.busy, maxSteps);
    assert.notEqual(steps, -1, `no certificate after ${maxSteps} steps; router statuses: ${this.router.statuses.join(' | ') || 'none'}`);
  }
}
