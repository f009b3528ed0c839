/**
 * In-process link shaping for a local federation: every ordered site pair gets a token bucket
 * (rate, burst) plus a per-request delay, jitter and loss, so that transfers between agents on one
 * machine see the links the mode policy is meant for. Time and randomness are injected: with a
 * fake clock and a seeded RNG every decision and every wait is deterministic.
 */
import { Transform, TransformCallback } from 'node:stream';
import { setTimeout as sleepReal } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => (ms > 0 ? sleepReal(ms) : Promise.resolve()),
};

/**
 * A seeded uniform [0, 1) generator: mulberry32 (Tommy Ettinger, public domain), 32-bit state.
 * Good enough for jitter and loss; not for anything secret.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LinkProfile {
  /** Sustained rate in Mbit/s (10^6 bits); Infinity for an unshaped link. */
  rateMbps: number;
  /** Bytes that may pass at line speed after an idle period. */
  burstBytes: number;
  /** One-way delay added to each request, in ms. */
  delayMs: number;
  /** Each request's delay is delayMs ± up to jitterMs, uniformly. */
  jitterMs: number;
  /** Probability in [0, 1] that a request is dropped. */
  loss: number;
}

export const UNSHAPED: LinkProfile = { rateMbps: Number.POSITIVE_INFINITY, burstBytes: 1 << 20, delayMs: 0, jitterMs: 0, loss: 0 };

export function checkLinkProfile(p: LinkProfile): string[] {
  const problems: string[] = [];
  if (!(p.rateMbps > 0)) problems.push(`rateMbps is ${p.rateMbps}; expected a positive number (Infinity for no limit)`);
  if (!(Number.isFinite(p.burstBytes) && p.burstBytes >= 1)) problems.push(`burstBytes is ${p.burstBytes}; expected at least 1`);
  if (!(p.delayMs >= 0 && Number.isFinite(p.delayMs))) problems.push(`delayMs is ${p.delayMs}; expected a finite number >= 0`);
  if (!(p.jitterMs >= 0 && Number.isFinite(p.jitterMs))) problems.push(`jitterMs is ${p.jitterMs}; expected a finite number >= 0`);
  if (!(p.loss >= 0 && p.loss <= 1)) problems.push(`loss is ${p.loss}; expected a probability in [0, 1]`);
  return problems;
}

/**
 * Token bucket that may go into debt: a request larger than the burst is admitted after the time
 * the rate needs to pay it off, instead of never. Debt also queues concurrent callers in the order
 * they asked, since each one waits behind the debt of those before it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  /** bytes per ms */
  private readonly rate: number;

  constructor(
    rateBytesPerSecond: number,
    readonly burstBytes: number,
    private readonly clock: Clock = realClock,
  ) {
    this.rate = rateBytesPerSecond / 1000;
    this.tokens = burstBytes;
    this.last = clock.now();
  }

  /** Takes `bytes` now and returns how many ms the caller must wait before sending them. */
  reserve(bytes: number): number {
    if (!Number.isFinite(this.rate)) return 0;
    const now = this.clock.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + (now - this.last) * this.rate);
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : -this.tokens / this.rate;
  }

  async acquire(bytes: number): Promise<void> {
    const wait = this.reserve(bytes);
    if (wait > 0) await this.clock.sleep(wait);
  }
}

/** Thrown by transmit() when the emulated link loses a request. Retryable, like a real timeout. */
export class LinkDropError extends Error {
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super(`emulated link ${from} -> ${to} dropped the request (configured loss); retry it`);
    this.name = 'LinkDropError';
  }
}

export interface RequestDecision {
  drop: boolean;
  delayMs: number;
}

export class LinkShaper {
  readonly bucket: TokenBucket;
  readonly from: string;
  readonly to: string;
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(
    readonly profile: LinkProfile,
    opts: { clock?: Clock; random?: () => number; from?: string; to?: string } = {},
  ) {
    const problems = checkLinkProfile(profile);
    if (problems.length > 0) throw new RangeError(`invalid link profile: ${problems.join('; ')}`);
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.from = opts.from ?? '?';
    this.to = opts.to ?? '?';
    this.bucket = new TokenBucket((profile.rateMbps * 1_000_000) / 8, profile.burstBytes, this.clock);
  }

  /** What happens to the next request: its delay, and whether it is lost. Two RNG draws. */
  decide(): RequestDecision {
    const jitter = this.profile.jitterMs * (2 * this.random() - 1);
    const drop = this.random() < this.profile.loss;
    return { drop, delayMs: Math.max(0, this.profile.delayMs + jitter) };
  }

  /** Waits until `bytes` may go on the wire at the link's rate. */
  acquire(bytes: number): Promise<void> {
    return this.bucket.acquire(bytes);
  }

  /**
   * One request over the link: waits its delay, fails with LinkDropError if it is lost, else waits
   * for `bytes` of rate and runs `send`. Use for small requests; stream bodies through pace().
   */
  async transmit<T>(bytes: number, send: () => Promise<T>): Promise<T> {
    const d = this.decide();
    if (d.delayMs > 0) await this.clock.sleep(d.delayMs);
    if (d.drop) throw new LinkDropError(this.from, this.to);
    await this.acquire(bytes);
    return send();
  }

  /**
   * A Transform that passes bytes through at the link's rate, in slices of at most `sliceBytes`
   * so a large write does not go out as one burst. Pipe a response body (or request body) through it.
   */
  pace(sliceBytes = Math.min(this.profile.burstBytes, 16 * 1024)): Transform {
    const acquire = (n: number) => this.acquire(n);
    return new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        (async () => {
          for (let i = 0; i < chunk.length; i += sliceBytes) {
            const slice = chunk.subarray(i, i + sliceBytes);
            await acquire(slice.length);
            this.push(slice);
          }
        })().then(() => cb(), cb);
      },
    });
  }
}

/** The shapers of a local federation, one per ordered pair: a -> b and b -> a are separate links. */
export class LinkShaperSet {
  private readonly shapers = new Map<string, LinkShaper>();

  constructor(private readonly opts: { clock?: Clock; seed?: number; defaultProfile?: LinkProfile } = {}) {}

  private key(from: string, to: string): string {
    return `${from}\u0000${to}`;
  }

  /** Sets (or replaces) the profile of from -> to. Each link gets its own RNG stream from the seed. */
  set(from: string, to: string, profile: LinkProfile): LinkShaper {
    const seed = this.opts.seed === undefined ? undefined : hashSeed(this.opts.seed, from, to);
    const shaper = new LinkShaper(profile, { clock: this.opts.clock, random: seed === undefined ? undefined : seededRandom(seed), from, to });
    this.shapers.set(this.key(from, to), shaper);
    return shaper;
  }

  /** The shaper of from -> to, created with the default profile (unshaped) on first use. */
  get(from: string, to: string): LinkShaper {
    if (from === to) throw new RangeError(`no link from site '${from}' to itself; a shaper needs two different sites`);
    return this.shapers.get(this.key(from, to)) ?? this.set(from, to, this.opts.defaultProfile ?? UNSHAPED);
  }
}

/** FNV-1a over the seed and the pair, so each link's RNG is independent and reproducible. */
function hashSeed(seed: number, from: string, to: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (const ch of `${from}->${to}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h >>> 0;
}
