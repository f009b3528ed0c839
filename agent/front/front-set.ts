/**
 * One front per workload the federation log places, each on a stable address, each following its
 * workload's placement (./route-follower.ts). The set reads the log through `read` (the worker
 * wires the federation log in: the agent layer cannot reach the client SDK), every `intervalMs`:
 * a workload new in the log gets a front, one gone from it loses its front.
 *
 * Addresses stay stable across restarts: each front's address is kept in `addressesFile` and its
 * port asked for again next time. If another process took the port meanwhile, the front takes a
 * new one and says so (clients must then be told; this is the one case the address moves).
 *
 * The cut-over's fast path (FrontHooks) reaches the fronts by the source's backend address at the
 * freeze and the thaw, and by workload at the route switch.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurable } from '../durable-files';
import { backendKey, parseBackend } from './backend-address';
import { RouteFollower, type SwitchedBy } from './route-follower';
import { TcpFront, type FrontOptions, type FrontStats } from './tcp-front';

/** What a workload's placement gives the front: the address its backend serves on. */
export interface PlacedAddress {
  id: string;
  address: string;
}

/** The calls the cut-over makes so that no poll interval adds to its downtime. Each is cheap and never throws. */
export interface FrontHooks {
  /** Before the source is frozen: hold new connections to the workload served at `sourceAddress`. */
  freezing(sourceAddress: string): void;
  /** The source was thawed (the cut-over rolled back): release what was held to it. */
  thawed(sourceAddress: string): void;
  /** The route switched (the placement is committed): forward `workload`'s front to `address`. */
  switched(workload: string, address: string): void;
  /** The same as freezing and thawed, by workload id (a workload run from its spec: activities/workload.ts). */
  freezingWorkload(workload: string): void;
  thawedWorkload(workload: string): void;
}

export interface FrontSetOptions {
  /** Every workload the log places, with its address. Throws when the log cannot be read. */
  read: () => Promise<PlacedAddress[]>;
  /** Where each front's address is kept, for restarts and for `fedflow up` to print. */
  addressesFile?: string;
  /** Listen host for every front (default 127.0.0.1). */
  host?: string;
  /** Poll interval (default 1 s). */
  intervalMs?: number;
  /** Pause lease (route-follower.ts). */
  leaseMs?: number;
  /** Options for each front (bounds and timeouts). */
  front?: Pick<FrontOptions, 'maxHeld' | 'holdTimeoutMs' | 'connectTimeoutMs'>;
  now?: () => number;
  log?: (line: string) => void;
}

export class FrontSet implements FrontHooks {
  private readonly followers = new Map<string, RouteFollower>();
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  /** The read after the one in flight, shared by the callers who came while it ran. */
  private syncAgain?: Promise<void>;
  private closed = false;
  private lastReadError?: string;

  constructor(private readonly opts: FrontSetOptions) {
    this.log = opts.log ?? (() => undefined);
    this.now = opts.now ?? Date.now;
  }

  /** Reads the log once and starts polling it. Resolves after the first read (even a failed one: polling goes on). */
  async start(): Promise<void> {
    await this.sync().catch(() => undefined);
    const tick = () => {
      if (this.closed) return;
      this.timer = setTimeout(() => {
        void this.sync()
          .catch(() => undefined)
          .finally(tick);
      }, this.opts.intervalMs ?? 1000);
      this.timer.unref();
    };
    tick();
  }

  /**
   * One read of the log, begun after this call, applied. Calls made while a read is in flight share
   * one more read after it: the read in flight may have begun before what the caller waits for (a
   * placement it just committed), so its answer would not do. (It once did: right after a deploy,
   * a caller was given the poll's read begun before the commit, and found no front.)
   */
  sync(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.syncing) return (this.syncing = this.readAndApply().finally(() => (this.syncing = undefined)));
    return (this.syncAgain ??= this.syncing
      .catch(() => undefined)
      .then(() => {
        this.syncAgain = undefined;
        return this.sync();
      }));
  }

  private async readAndApply(): Promise<void> {
    for (const f of this.followers.values()) f.expire();
    const startedAt = this.now();
    let placed: PlacedAddress[];
    try {
      placed = await this.opts.read();
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastReadError) this.log(`fronts: cannot read the federation log (${msg}); fronts keep their routes and try again`);
      this.lastReadError = msg;
      throw err;
    }
    this.lastReadError = undefined;
    if (this.closed) return;
    const seen = new Set<string>();
    for (const w of placed) {
      seen.add(w.id);
      const f = this.followers.get(w.id) ?? (await this.open(w.id));
      if (this.closed) return;
      f.observe(w.address, startedAt);
    }
    for (const [id, f] of this.followers) {
      if (seen.has(id)) continue;
      this.followers.delete(id);
      await f.front.close();
      this.log(`front ${id}: the workload left the federation log; front at ${f.front.address} closed`);
    }
    this.saveAddresses();
  }

  private async open(workload: string): Promise<RouteFollower> {
    const base = { workload, host: this.opts.host, ...this.opts.front, log: this.log };
    const before = this.savedAddresses()[workload];
    let front = new TcpFront({ ...base, port: before ? Number(before.slice(before.lastIndexOf(':') + 1)) : 0 });
    try {
      await front.listen();
    } catch (err) {
      if (!before) throw err;
      front = new TcpFront({ ...base, port: 0 });
      await front.listen();
      this.log(`front ${workload}: its address ${before} is taken (${(err as Error).message}); now at ${front.address} — clients must be told`);
    }
    const f = new RouteFollower(workload, front, { leaseMs: this.opts.leaseMs, now: this.now, log: this.log });
    this.followers.set(workload, f);
    this.log(`front ${workload}: stable address ${front.address}`);
    this.saveAddresses();
    return f;
  }

  /** The stable address of a workload's front, once the log has placed it. */
  address(workload: string): string | undefined {
    return this.followers.get(workload)?.front.address;
  }

  follower(workload: string): RouteFollower | undefined {
    return this.followers.get(workload);
  }

  stats(): Record<string, FrontStats & { lastSwitch?: { by: SwitchedBy; atMs: number } }> {
    return Object.fromEntries([...this.followers].map(([id, f]) => [id, { ...f.front.stats(), ...(f.lastSwitch ? { lastSwitch: { ...f.lastSwitch } } : {}) }]));
  }

  freezing(sourceAddress: string): void {
    this.each(sourceAddress, 'freeze', (f) => f.pause());
  }

  thawed(sourceAddress: string): void {
    for (const f of this.followers.values()) {
      if (f.pausedBackend !== undefined && f.pausedBackend === keyOf(sourceAddress)) f.resume();
    }
  }

  freezingWorkload(workload: string): void {
    this.followers.get(workload)?.pause();
  }

  thawedWorkload(workload: string): void {
    const f = this.followers.get(workload);
    if (f?.pausedBackend !== undefined) f.resume();
  }

  switched(workload: string, address: string): void {
    const f = this.followers.get(workload);
    if (!f) return void this.log(`front ${workload}: the route switched to ${address} before the log placed the workload here; the next read opens its front`);
    try {
      f.switchTo(address);
    } catch (err) {
      this.log(`front ${workload}: cannot switch to ${address} (${(err as Error).message}); the log's next read sets the route`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.syncing?.catch(() => undefined);
    await this.syncAgain?.catch(() => undefined);
    await Promise.all([...this.followers.values()].map((f) => f.front.close()));
    this.followers.clear();
  }

  /** Every front forwarding to (or paused from) `address`. */
  private each(address: string, what: string, fn: (f: RouteFollower) => void): void {
    const key = keyOf(address);
    if (key === undefined) return void this.log(`fronts: ${what} names address '${address}', which is not host:port; no front changed`);
    for (const f of this.followers.values()) if (f.front.current.backend === key) fn(f);
  }

  private savedAddresses(): Record<string, string> {
    const file = this.opts.addressesFile;
    if (!file || !existsSync(file)) return {};
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  private saveAddresses(): void {
    const file = this.opts.addressesFile;
    if (!file || this.closed) return;
    const now = Object.fromEntries([...this.followers].map(([id, f]) => [id, f.front.address]));
    const before = this.savedAddresses();
    if (JSON.stringify(now) === JSON.stringify(before)) return;
    mkdirSync(dirname(file), { recursive: true });
    writeFileDurable(file, JSON.stringify(now, null, 2));
  }
}

function keyOf(address: string): string | undefined {
  try {
    return backendKey(parseBackend(address));
  } catch {
    return undefined;
  }
}
