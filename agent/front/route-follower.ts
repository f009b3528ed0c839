/**
 * Points one workload's front where the federation log places it. The log is the only truth of
 * where a workload runs; the front's backend is a cache of it, rebuilt from every read.
 *
 * Two ways in:
 *   - `observe(address, readStartedAt)`: a read of the log (the follower's poll). The log wins.
 *   - the cut-over's fast path, so that no poll interval adds to the downtime:
 *       `pause(leaseMs)` at the freeze, `switchTo(address)` at the route switch (after the
 *       placement is committed), `resume()` when a cut-over is rolled back.
 *
 * How the two agree:
 *   - A read that began before the last fast-path call is dropped: it may predate the commit the
 *     call followed, and would move the route back for one poll interval.
 *   - While paused, a read that still names the backend the front was paused from holds the pause
 *     (the cut-over is under way, its placement not committed yet). A read naming any other
 *     address ends the pause and forwards there: the switch committed and its call was lost.
 *   - A pause is a lease: past `leaseMs` without switch or resume (the caller crashed, say), the
 *     front follows the log again, to the source if the log still names it.
 *   - A fast-path switch that the log does not back is undone by the next read: the log wins.
 */
import { backendKey, BackendAddressError, parseBackend } from './backend-address';
import { FrontState, type TcpFront } from './tcp-front';

/** How long a pause holds without a switch or a resume (default 60 s): longer than a cut-over's downtime window. */
export const DEFAULT_PAUSE_LEASE_MS = 60_000;

export type Observed = 'stale' | 'held' | 'unchanged' | 'moved' | 'bad-address';

/** Who moved the route last: the migration's route step (the fast path) or a read of the log. */
export type SwitchedBy = 'route step' | 'log';

export interface RouteFollowerOptions {
  leaseMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export class RouteFollower {
  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly log: (line: string) => void;
  private pausedUntil?: number;
  private pausedFrom?: string;
  /** When the fast path last acted: reads begun before it are stale. */
  private fastPathAt = Number.NEGATIVE_INFINITY;
  /** The address the log last gave (as written there). */
  private logAddress?: string;
  /** The last move of the route to another backend (or out of a pause): by whom, and when. */
  lastSwitch?: { by: SwitchedBy; atMs: number };

  constructor(
    readonly workload: string,
    readonly front: TcpFront,
    opts: RouteFollowerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? DEFAULT_PAUSE_LEASE_MS;
    this.log = opts.log ?? (() => undefined);
  }

  /** The backend the front was paused from, while a pause holds. */
  get pausedBackend(): string | undefined {
    return this.pausedUntil !== undefined ? this.pausedFrom : undefined;
  }

  /** Fast path at the freeze: hold new connections for at most `leaseMs` (renewed by calling again). */
  pause(leaseMs = this.leaseMs): void {
    const t = this.now();
    if (this.pausedUntil === undefined) this.pausedFrom = this.front.current.backend;
    this.pausedUntil = t + leaseMs;
    this.fastPathAt = t;
    this.front.pause();
  }

  /** Fast path at the route switch: forward to the target now; the next read of the log confirms it. */
  switchTo(address: string): void {
    const cur = this.front.current;
    const key = backendKey(parseBackend(address));
    if (cur.state !== FrontState.Forwarding || cur.backend !== key) this.lastSwitch = { by: 'route step', atMs: this.now() };
    this.front.forwardTo(address);
    this.pausedUntil = undefined;
    this.fastPathAt = this.now();
  }

  /** A rolled-back cut-over: forward again where the log (or, before any read, the pause) says. */
  resume(): void {
    const to = this.logAddress ?? this.pausedFrom;
    this.pausedUntil = undefined;
    this.fastPathAt = this.now();
    if (to) this.front.forwardTo(to);
  }

  /** A pause whose lease ran out goes back to the last address the log gave. Called on every poll tick. */
  expire(): void {
    if (this.pausedUntil === undefined || this.now() < this.pausedUntil) return;
    this.log(`front ${this.workload}: pause lease of ${this.leaseMs} ms ran out without a switch or a resume; following the log again`);
    this.resume();
  }

  /** A read of the log that began at `readStartedAt` places the workload at `address`. */
  observe(address: string, readStartedAt: number): Observed {
    if (readStartedAt < this.fastPathAt) return 'stale';
    let key: string;
    try {
      key = backendKey(parseBackend(address));
    } catch (err) {
      if (!(err instanceof BackendAddressError)) throw err;
      this.log(`front ${this.workload}: the log's address cannot be forwarded to (${err.message}); the front keeps its route`);
      return 'bad-address';
    }
    this.logAddress = address;
    if (this.pausedUntil !== undefined) {
      if (this.now() < this.pausedUntil && key === this.pausedFrom) return 'held';
      this.log(`front ${this.workload}: the log places it at ${key} ${this.now() < this.pausedUntil ? 'while paused (the switch was not called)' : 'after the pause lease ran out'}; forwarding there`);
      this.pausedUntil = undefined;
    }
    const cur = this.front.current;
    if (cur.state === FrontState.Forwarding && cur.backend === key) return 'unchanged';
    if (cur.state === FrontState.Forwarding) this.log(`front ${this.workload}: forwarded to ${cur.backend}, the log says ${key}; the log wins`);
    this.front.forwardTo(address);
    this.lastSwitch = { by: 'log', atMs: this.now() };
    return 'moved';
  }
}
