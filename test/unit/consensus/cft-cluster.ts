/** A CFT federation on the in-memory network: site followers with simulated disks, and workflow leaders. */
import assert from 'node:assert/strict';
import {
  proposeLeader, restoreFollower, startLeader, stepFollower, stepLeader, tickLeader,
  type CftMessage, type CftReady, type FollowerState, type HardState, type LeaderState, type LogEntry,
} from '../../../core/consensus/cft';
import { Network, type Node } from './network';

export type Msg = CftMessage<string>;

/** Every commit anyone reports, checked against every other: the CFT safety property. */
export class CommitLedger {
  readonly byIndex = new Map<number, string>();
  readonly perNode = new Map<string, LogEntry<string>[]>();
  record(who: string, entries: readonly LogEntry<string>[]): void {
    const mine = this.perNode.get(who) ?? [];
    for (const e of entries) {
      const key = JSON.stringify(e);
      const prev = this.byIndex.get(e.index);
      assert.ok(prev === undefined || prev === key, `two values committed at index ${e.index}: ${prev} and ${key} (reported by ${who})`);
      this.byIndex.set(e.index, key);
      mine.push(e);
    }
    this.perNode.set(who, mine);
  }
  committedValues(who: string): string[] {
    return (this.perNode.get(who) ?? []).flatMap((e) => (e.kind === 'value' ? [e.value] : []));
  }
}

export interface Disk {
  hard: HardState;
  log: LogEntry<string>[];
}

export class SiteNode implements Node<Msg> {
  state: FollowerState<string>;
  readonly readies: CftReady<string>[] = [];
  constructor(readonly id: string, readonly disk: Disk, private readonly ledger: CommitLedger) {
    this.state = restoreFollower(id, { ...disk.hard, log: disk.log.map((e) => ({ ...e })) });
  }
  receive(m: Msg): Msg[] {
    const ready = stepFollower(this.state, m);
    this.readies.push(ready);
    // Persist first, exactly what the Ready says, on the simulated disk that survives crashes.
    if (ready.truncateFrom !== undefined) this.disk.log.length = ready.truncateFrom - 1;
    for (const e of ready.entries) {
      assert.equal(e.index, this.disk.log.length + 1, `site ${this.id}: persisted entry ${e.index} out of order`);
      this.disk.log.push({ ...e });
    }
    if (ready.hardState) this.disk.hard = { ...ready.hardState };
    assert.ok(this.disk.hard.commit <= this.disk.log.length, `site ${this.id}: durable commit ${this.disk.hard.commit} past durable log ${this.disk.log.length}`);
    this.ledger.record(this.id, ready.committed);
    return ready.messages;
  }
  tick(): Msg[] {
    return [];
  }
}

export class LeaderNode implements Node<Msg> {
  constructor(public state: LeaderState<string>, private readonly ledger: CommitLedger) {}
  receive(m: Msg): Msg[] {
    return this.apply(stepLeader(this.state, m));
  }
  tick(): Msg[] {
    return this.apply(tickLeader(this.state));
  }
  propose(v: string): Msg[] {
    return this.apply(proposeLeader(this.state, v));
  }
  apply(r: CftReady<string>): Msg[] {
    this.ledger.record(this.state.id, r.committed);
    return r.messages;
  }
}

export class CftCluster {
  readonly net: Network<Msg>;
  readonly ledger = new CommitLedger();
  readonly disks = new Map<string, Disk>();
  private leaders: string[] = [];
  maxTerm = 0;

  constructor(readonly sites: string[], seed: number) {
    this.net = new Network<Msg>(seed, (m) => ({ from: m.from, to: m.to }));
    for (const id of sites) {
      const disk: Disk = { hard: { term: 0, vote: null, commit: 0 }, log: [] };
      this.disks.set(id, disk);
      this.net.add(id, () => new SiteNode(id, disk, this.ledger));
    }
  }

  /** Starts a new leader epoch (a new workflow run) with a fresh, higher term. */
  newLeader(term = this.maxTerm + 1): LeaderNode {
    this.maxTerm = Math.max(this.maxTerm, term);
    const id = `wf-${term}-${this.leaders.length}`;
    const { state, ready } = startLeader<string>({ id, term, members: this.sites });
    const node = new LeaderNode(state, this.ledger);
    this.net.add(id, () => node);
    this.leaders.push(id);
    this.net.send(node.apply(ready));
    return node;
  }

  leader(id: string): LeaderNode {
    return this.net.node<LeaderNode>(id);
  }

  leaderIds(): string[] {
    return [...this.leaders];
  }

  site(id: string): SiteNode {
    return this.net.node<SiteNode>(id);
  }

  propose(leader: LeaderNode, v: string): void {
    this.net.send(leader.propose(v));
  }

  committedAt(id: string): string[] {
    return this.ledger.committedValues(id);
  }
}
