/**
 * A workload's front: a TCP (L4) forwarder on a stable address. Clients connect here and never
 * learn where the workload runs; the front forwards each connection to the current backend.
 *
 * States:
 *   - `forwarding` to a backend B: each new connection is piped to B.
 *   - `paused` (the cut-over's freeze): new connections are accepted and held, not refused, up
 *     to `maxHeld` at a time and `holdTimeoutMs` each; connections already piped to B stay until
 *     B closes them (the old placement stops) or the route moves elsewhere.
 *   - `idle`: no route known yet (before the first read of the log); new connections are held
 *     as when paused.
 * `forwardTo(T)` from any state: connections piped to any backend other than T are closed (the
 * log no longer names it; a client must not go on talking to the old placement), and the held
 * connections go to T in the order they came.
 *
 * Refusals are resets (RST), so a client sees an error and not a clean end of stream: a held
 * connection past `holdTimeoutMs`, a connection arriving with `maxHeld` already held, and the
 * peer of a socket that failed (backend unreachable or reset). Every refusal is counted and the
 * last reason is kept for /stats.
 *
 * Piping keeps backpressure (stream.pipe pauses the faster side), carries half-close both ways
 * (allowHalfOpen on both sockets: a client's FIN reaches the backend and the backend may still
 * answer), and an error on either side destroys both.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { backendKey, parseBackend, type Backend } from './backend-address';

export interface FrontOptions {
  /** The workload this front serves: named in logs and stats. */
  workload: string;
  /** Listen host (default 127.0.0.1: fedflow sends traffic only to loopback unless told otherwise). */
  host?: string;
  /** Listen port; 0 (the default) takes a free one. The front set keeps it stable across restarts. */
  port?: number;
  /** Connections held at once while paused; one more is reset (default 256). */
  maxHeld?: number;
  /** How long one connection may be held before it is reset (default 15 s). */
  holdTimeoutMs?: number;
  /** How long a connection to the backend may take before the client is reset (default 5 s). */
  connectTimeoutMs?: number;
  log?: (line: string) => void;
}

export const FRONT_DEFAULTS = { maxHeld: 256, holdTimeoutMs: 15_000, connectTimeoutMs: 5_000 } as const;

export const FrontState = { Idle: 'idle', Forwarding: 'forwarding', Paused: 'paused' } as const;
export type FrontState = (typeof FrontState)[keyof typeof FrontState];

export interface FrontStats {
  workload: string;
  /** The stable address clients use (host:port). */
  address: string;
  state: FrontState;
  /** Where new connections go (forwarding), or went before the pause; null before any route. */
  backend: string | null;
  /** Connections accepted since start. */
  connections: number;
  /** Connections piped to a backend right now. */
  active: number;
  /** Connections held right now, and since start. */
  held: number;
  heldTotal: number;
  /** Held connections sent on to a backend. */
  released: number;
  /** Connections reset because `maxHeld` were already held. */
  refused: number;
  /** Held connections reset after `holdTimeoutMs`. */
  expired: number;
  /** Connections whose backend could not be reached, or failed mid-stream. */
  backendErrors: number;
  /** Piped connections closed because the route moved to another backend. */
  closedAtSwitch: number;
  /** Bytes client → backend and backend → client. */
  bytesIn: number;
  bytesOut: number;
  /** Times the backend changed, and times the front was paused. */
  switches: number;
  pauses: number;
  lastRefusal: string | null;
}

interface Held {
  socket: Socket;
  timer: NodeJS.Timeout;
}

interface Piped {
  client: Socket;
  upstream: Socket;
  backend: string;
}

/** Resets a socket (RST) so the peer sees an error, not a clean end; falls back to destroy. */
function reset(s: Socket): void {
  if (s.destroyed) return;
  // A socket still connecting has nothing to reset (resetAndDestroy would wait for its connect).
  // One whose write side has ended (FIN sent or queued) cannot be reset: libuv refuses the reset
  // of a shut-down socket, and Node then never closes the handle, so the process cannot exit.
  if (s.connecting || s.writableEnded) return void s.destroy();
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

export class TcpFront {
  private readonly opts: Required<Omit<FrontOptions, 'log'>> & { log: (line: string) => void };
  private server?: Server;
  private listenAddress = '';
  private state: FrontState = FrontState.Idle;
  private backend?: Backend;
  private readonly held: Held[] = [];
  private readonly piped = new Set<Piped>();
  private readonly counters = { connections: 0, heldTotal: 0, released: 0, refused: 0, expired: 0, backendErrors: 0, closedAtSwitch: 0, bytesIn: 0, bytesOut: 0, switches: 0, pauses: 0 };
  private lastRefusal: string | null = null;

  constructor(opts: FrontOptions) {
    const maxHeld = opts.maxHeld ?? FRONT_DEFAULTS.maxHeld;
    const holdTimeoutMs = opts.holdTimeoutMs ?? FRONT_DEFAULTS.holdTimeoutMs;
    const connectTimeoutMs = opts.connectTimeoutMs ?? FRONT_DEFAULTS.connectTimeoutMs;
    if (!Number.isSafeInteger(maxHeld) || maxHeld < 0) throw new RangeError(`front '${opts.workload}': maxHeld must be a whole number ≥ 0; got ${maxHeld}`);
    if (!(holdTimeoutMs > 0)) throw new RangeError(`front '${opts.workload}': holdTimeoutMs must be > 0; got ${holdTimeoutMs}`);
    if (!(connectTimeoutMs > 0)) throw new RangeError(`front '${opts.workload}': connectTimeoutMs must be > 0; got ${connectTimeoutMs}`);
    this.opts = { workload: opts.workload, host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, maxHeld, holdTimeoutMs, connectTimeoutMs, log: opts.log ?? (() => undefined) };
  }

  /** Starts listening; resolves with the stable address (host:port). Rejects if the port is taken. */
  async listen(): Promise<string> {
    // allowHalfOpen: a client's FIN is passed on as the backend's, and the answer still comes back.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.listenAddress = backendKey({ host: this.opts.host, port: (server.address() as AddressInfo).port });
    return this.listenAddress;
  }

  get address(): string {
    return this.listenAddress;
  }

  get current(): { state: FrontState; backend?: string } {
    return { state: this.state, ...(this.backend ? { backend: backendKey(this.backend) } : {}) };
  }

  /**
   * Stop sending new connections to the backend: hold them until forwardTo. Connections already
   * piped stay; the old placement closes them as it stops (or forwardTo another backend does).
   */
  pause(): void {
    if (this.state === FrontState.Paused) return;
    this.state = FrontState.Paused;
    this.counters.pauses++;
    this.opts.log(`front ${this.opts.workload}: paused (new connections held, at most ${this.opts.maxHeld} for ${this.opts.holdTimeoutMs} ms each)`);
  }

  /**
   * Forward new connections (and every held one) to `address` (as the log records it: host:port
   * or scheme://host:port). Connections piped to any other backend are closed. Throws
   * BackendAddressError on an address that names no host and port; the front is unchanged then.
   */
  forwardTo(address: string | Backend): void {
    const next = typeof address === 'string' ? parseBackend(address) : address;
    const key = backendKey(next);
    const moved = !this.backend || backendKey(this.backend) !== key;
    if (moved) {
      if (this.backend) this.counters.switches++;
      for (const p of [...this.piped]) {
        if (p.backend === key) continue;
        this.counters.closedAtSwitch++;
        this.unpipe(p);
        reset(p.client);
        reset(p.upstream);
      }
    }
    const wasHolding = this.state !== FrontState.Forwarding;
    this.backend = next;
    this.state = FrontState.Forwarding;
    if (moved || wasHolding) this.opts.log(`front ${this.opts.workload}: forwarding to ${key}${this.held.length ? `, releasing ${this.held.length} held` : ''}`);
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      this.counters.released++;
      this.pipe(h.socket, next);
    }
  }

  stats(): FrontStats {
    return {
      workload: this.opts.workload,
      address: this.listenAddress,
      state: this.state,
      backend: this.backend ? backendKey(this.backend) : null,
      ...this.counters,
      active: this.piped.size,
      held: this.held.length,
      lastRefusal: this.lastRefusal,
    };
  }

  /** Stops listening and resets every connection, held or piped. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const h of this.held.splice(0)) {
      clearTimeout(h.timer);
      reset(h.socket);
    }
    for (const p of [...this.piped]) {
      this.unpipe(p);
      reset(p.client);
      reset(p.upstream);
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.counters.connections++;
    socket.setNoDelay(true);
    if (this.state === FrontState.Forwarding && this.backend) return this.pipe(socket, this.backend);
    if (this.held.length >= this.opts.maxHeld) {
      this.counters.refused++;
      this.refuse(socket, `held queue full (${this.held.length} of ${this.opts.maxHeld} held while ${this.state === FrontState.Idle ? 'no route is known yet' : 'paused for a cut-over'}); connection reset`);
      return;
    }
    // Held: the socket is not read from (no 'data' listener), so at most a socket buffer of what
    // the client sent waits here, and the pipe delivers it in order once a backend is known.
    const h: Held = {
      socket,
      timer: setTimeout(() => {
        const i = this.held.indexOf(h);
        if (i < 0) return;
        this.held.splice(i, 1);
        this.counters.expired++;
        this.refuse(socket, `held ${this.opts.holdTimeoutMs} ms without a route (the cut-over neither switched nor resumed in time); connection reset`);
      }, this.opts.holdTimeoutMs),
    };
    // A client that gives up while held leaves the queue.
    const gone = () => {
      const i = this.held.indexOf(h);
      if (i >= 0) {
        this.held.splice(i, 1);
        clearTimeout(h.timer);
      }
    };
    socket.once('close', gone);
    socket.on('error', gone);
    this.held.push(h);
    this.counters.heldTotal++;
  }

  private refuse(socket: Socket, reason: string): void {
    this.lastRefusal = reason;
    this.opts.log(`front ${this.opts.workload}: ${reason}`);
    reset(socket);
  }

  private pipe(client: Socket, to: Backend): void {
    const backend = backendKey(to);
    const upstream = connect({ host: to.host, port: to.port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    const p: Piped = { client, upstream, backend };
    this.piped.add(p);
    const connectTimer = setTimeout(() => upstream.destroy(new Error(`backend ${backend} did not accept within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
    let failed = false;
    // An error on either side ends both; the other peer is reset so it sees an error too.
    const fail = (side: 'client' | 'backend') => (err: Error) => {
      if (failed) return;
      failed = true;
      clearTimeout(connectTimer);
      if (side === 'backend') {
        this.counters.backendErrors++;
        this.lastRefusal = `backend ${backend}: ${err.message}`;
        this.opts.log(`front ${this.opts.workload}: backend ${backend} failed (${err.message}); client reset`);
      }
      this.unpipe(p);
      reset(client);
      reset(upstream);
    };
    client.on('error', fail('client'));
    upstream.on('error', fail('backend'));
    // A side that closed cleanly has ended both its directions; its peer is left to finish
    // flushing what it still holds and closes by itself. A side that closed on an error, or
    // before the backend answered, takes the other with it at once.
    let open = 2;
    let connecting = true;
    const closed = (other: Socket) => (hadError: boolean) => {
      open--;
      if (hadError || connecting) {
        clearTimeout(connectTimer);
        other.destroy();
      }
      if (open === 0 || hadError || connecting) this.unpipe(p);
    };
    client.once('close', closed(upstream));
    upstream.once('close', closed(client));
    upstream.once('connect', () => {
      connecting = false;
      clearTimeout(connectTimer);
      if (client.destroyed) return upstream.destroy();
      client.on('data', (c: Buffer) => (this.counters.bytesIn += c.length));
      upstream.on('data', (c: Buffer) => (this.counters.bytesOut += c.length));
      // pipe() waits on 'drain' when the writer is full: the faster side is paused, never buffered.
      client.pipe(upstream);
      upstream.pipe(client);
      // A client that half-closed while held has had its 'end' already: pass it on by hand.
      if (client.readableEnded) upstream.end();
    });
  }

  private unpipe(p: Piped): void {
    this.piped.delete(p);
  }
}
