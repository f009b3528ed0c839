/**
 * In-memory network for driving consensus cores, after etcd-io/raft's raft_test.go network:
 * it can drop, duplicate, reorder, cut links, isolate sites, and crash/restart a site (the node
 * factory rebuilds it from its durable state only, so whatever the core forgot to ask to persist
 * is lost, as after a real crash).
 */
import { Prng } from './prng';

export interface Node<M> {
  receive(m: M): M[];
  tick(): M[];
}

interface InFlight<M> {
  from: string;
  to: string;
  msg: M;
}

export interface NetworkFaults {
  drop?: number;
  duplicate?: number;
  /** Deliver a random queued message instead of the oldest. */
  reorder?: boolean;
}

export class Network<M> {
  readonly rng: Prng;
  private nodes = new Map<string, Node<M>>();
  private factories = new Map<string, () => Node<M>>();
  private queue: InFlight<M>[] = [];
  private down = new Set<string>();
  private cuts = new Set<string>();
  private isolated = new Set<string>();
  faults: NetworkFaults = {};
  delivered = 0;

  constructor(seed: number, private readonly route: (m: M) => { from: string; to: string }) {
    this.rng = new Prng(seed);
  }

  /** Adds a node; `factory` is called now and again on every restart. */
  add(id: string, factory: () => Node<M>): void {
    this.factories.set(id, factory);
    this.nodes.set(id, factory());
  }

  node<N extends Node<M>>(id: string): N {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id} (nodes: ${[...this.nodes.keys()].join(', ')})`);
    return n as N;
  }

  ids(): string[] {
    return [...this.nodes.keys()];
  }

  send(msgs: readonly M[]): void {
    for (const msg of msgs) this.queue.push({ ...this.route(msg), msg });
  }

  crash(id: string): void {
    this.down.add(id);
  }

  restart(id: string): void {
    if (!this.down.delete(id)) return;
    this.nodes.set(id, (this.factories.get(id) as () => Node<M>)());
  }

  isDown(id: string): boolean {
    return this.down.has(id);
  }

  cut(a: string, b: string): void {
    this.cuts.add(`${a}|${b}`).add(`${b}|${a}`);
  }

  isolate(id: string): void {
    this.isolated.add(id);
  }

  heal(): void {
    this.cuts.clear();
    this.isolated.clear();
  }

  reachable(from: string, to: string): boolean {
    return !this.down.has(to) && !this.down.has(from) && !this.isolated.has(from) && !this.isolated.has(to) && !this.cuts.has(`${from}|${to}`);
  }

  pending(): number {
    return this.queue.length;
  }

  /** Delivers one queued message (or loses it to a fault). Returns false if none was queued. */
  deliverOne(): boolean {
    if (this.queue.length === 0) return false;
    const i = this.faults.reorder ? this.rng.int(this.queue.length) : 0;
    const [f] = this.queue.splice(i, 1) as [InFlight<M>];
    if (!this.reachable(f.from, f.to) || this.rng.chance(this.faults.drop ?? 0)) return true;
    if (this.rng.chance(this.faults.duplicate ?? 0)) this.queue.push(f);
    const node = this.nodes.get(f.to);
    if (!node) return true;
    this.delivered++;
    this.send(node.receive(f.msg));
    return true;
  }

  tickAll(): void {
    for (const [id, node] of this.nodes) if (!this.down.has(id)) this.send(node.tick());
  }

  /** Delivers messages, ticking every `tickEvery` steps, until `done()` or `maxSteps`. Returns steps used, or -1. */
  runUntil(done: () => boolean, maxSteps: number, tickEvery = 8): number {
    for (let step = 1; step <= maxSteps; step++) {
      if (done()) return step - 1;
      if (step % tickEvery === 0 || this.queue.length === 0) this.tickAll();
      else this.deliverOne();
    }
    return done() ? maxSteps : -1;
  }
}
