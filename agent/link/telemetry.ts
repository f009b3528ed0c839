/**
 * Link telemetry at the agent: recent throughput/RTT/loss samples per site
 * pair, kept in a ring buffer and persisted to a small JSON file, so the next
 * migration's prediction starts from a warm history instead of one probe; and
 * `probe`, which measures one sample against a peer's HTTP endpoint.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

export interface LinkSample {
  /** When the sample was taken, ms since the epoch. */
  readonly timeMs: number;
  readonly throughputMbps: number;
  /** null when the probe could not measure it. */
  readonly rttMs: number | null;
  /** Share of failed small requests in the probe, 0..1; null when unknown. */
  readonly loss: number | null;
}

export interface LinkSummary {
  readonly count: number;
  readonly lastMbps: number | null;
  readonly meanMbps: number | null;
  readonly harmonicMeanMbps: number | null;
  readonly medianRttMs: number | null;
  readonly meanLoss: number | null;
  /** Seconds between the first and the last sample. */
  readonly spanS: number;
}

/** What the predictor and the decision record get for one ordered site pair. */
export interface LinkProfile {
  readonly from: string;
  readonly to: string;
  /** Oldest first. */
  readonly samples: readonly LinkSample[];
  readonly summary: LinkSummary;
}

/**
 * Samples with a measured RTT kept past the ring's capacity. Transfers measure throughput only, and
 * a long one would otherwise push every RTT out of the ring, leaving the policy a link with no RTT
 * (which it never calls short enough for datacenter mode). The predictor reads the last 5 RTTs.
 */
export const RTT_SAMPLES_KEPT = 5;

/** Drops the oldest samples past `capacity`, except the newest RTT_SAMPLES_KEPT that measured an RTT. */
function evictOldest(ring: LinkSample[], capacity: number): LinkSample[] {
  let excess = ring.length - capacity;
  if (excess <= 0) return ring;
  const kept = new Set<number>();
  for (let i = ring.length - 1; i >= 0 && kept.size < Math.min(RTT_SAMPLES_KEPT, capacity - 1); i--) if (ring[i]!.rttMs !== null) kept.add(i);
  return ring.filter((_, i) => kept.has(i) || excess-- <= 0);
}

/** The predictor reads the last 32 samples (models/features.ts WINDOW); keep twice that. */
export const DEFAULT_CAPACITY = 64;
export const TELEMETRY_FILE = 'link-telemetry.json';

const sampleSchema = z.object({
  timeMs: z.number().finite(),
  throughputMbps: z.number().finite().nonnegative(),
  rttMs: z.number().finite().nonnegative().nullable(),
  loss: z.number().min(0).max(1).nullable(),
});
const fileSchema = z.object({
  version: z.literal(1),
  links: z.record(z.string(), z.array(sampleSchema)),
  // The predictor's per-link adaptation state (models/link-adaptation.ts). Opaque here: the agent
  // does not import models/, and the predictor checks it when it reads it back. Optional, so a
  // file written before adaptation existed still loads.
  adaptation: z.record(z.string(), z.unknown()).optional(),
  // The predictor's agent-level record over all the pairs into this site (models/agent-prior.ts):
  // which estimator this agent's links reward, the prior of a new link. Opaque and optional alike.
  agentPrior: z.unknown().optional(),
});

const pairKey = (from: string, to: string) => `${from} -> ${to}`;

export class LinkTelemetry {
  private readonly links = new Map<string, LinkSample[]>();
  private readonly adaptations = new Map<string, unknown>();
  private agentRecord: unknown = undefined;
  readonly file: string;

  /**
   * Opens (or starts) the telemetry file in `dir`. A missing file is an empty
   * history; an unreadable one is reported, not silently dropped.
   */
  constructor(
    readonly dir: string,
    readonly capacity: number = DEFAULT_CAPACITY,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.file = path.join(dir, TELEMETRY_FILE);
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const parsed = fileSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`link telemetry file ${this.file} is not valid: ${parsed.error.message}`);
    for (const [key, samples] of Object.entries(parsed.data.links)) this.links.set(key, evictOldest([...samples].sort((a, b) => a.timeMs - b.timeMs), capacity));
    for (const [key, state] of Object.entries(parsed.data.adaptation ?? {})) this.adaptations.set(key, state);
    this.agentRecord = parsed.data.agentPrior;
  }

  /** The predictor's agent-level record, as last stored (undefined: none yet). */
  agentPrior(): unknown {
    return this.agentRecord;
  }

  /** Stores the agent-level record alone (setAdaptation stores it with a pair's state) and persists the file. */
  setAgentPrior(record: unknown): void {
    this.agentRecord = record;
    this.save();
  }

  /** The predictor's adaptation state for the pair, as last stored (undefined: none yet). */
  adaptation(from: string, to: string): unknown {
    return this.adaptations.get(pairKey(from, to));
  }

  /**
   * Stores the pair's adaptation state beside its samples and, when given, the agent-level record
   * (one file write for both: they are learnt from the same scored points), and persists the file.
   */
  setAdaptation(from: string, to: string, state: unknown, agentPrior?: unknown): void {
    this.adaptations.set(pairKey(from, to), state);
    if (agentPrior !== undefined) this.agentRecord = agentPrior;
    this.save();
  }

  /** Appends a sample (dropping the oldest past capacity) and persists the file. */
  record(from: string, to: string, sample: LinkSample): LinkProfile {
    const key = pairKey(from, to);
    const ring = this.links.get(key) ?? [];
    ring.push(sample);
    // Probes can finish out of order; the features need time order.
    ring.sort((a, b) => a.timeMs - b.timeMs);
    this.links.set(key, evictOldest(ring, this.capacity));
    this.save();
    return this.profile(from, to);
  }

  profile(from: string, to: string): LinkProfile {
    const samples = [...(this.links.get(pairKey(from, to)) ?? [])];
    return { from, to, samples, summary: summarize(samples) };
  }

  /** Written to a temp file and renamed, so a crash never leaves half a file. */
  save(): void {
    mkdirSync(this.dir, { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const adaptation = this.adaptations.size > 0 ? { adaptation: Object.fromEntries(this.adaptations) } : {};
    const agentPrior = this.agentRecord !== undefined ? { agentPrior: this.agentRecord } : {};
    writeFileSync(tmp, JSON.stringify({ version: 1, links: Object.fromEntries(this.links), ...adaptation, ...agentPrior }) + '\n');
    renameSync(tmp, this.file);
  }
}

export function summarize(samples: readonly LinkSample[]): LinkSummary {
  const tput = samples.map((s) => s.throughputMbps);
  const rtts = samples.flatMap((s) => (s.rttMs === null ? [] : [s.rttMs])).sort((a, b) => a - b);
  const losses = samples.flatMap((s) => (s.loss === null ? [] : [s.loss]));
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : null);
  const positive = tput.filter((v) => v > 0);
  return {
    count: samples.length,
    lastMbps: tput.length ? tput[tput.length - 1]! : null,
    meanMbps: mean(tput),
    harmonicMeanMbps: positive.length ? positive.length / positive.reduce((a, v) => a + 1 / v, 0) : null,
    medianRttMs: rtts.length ? rtts[Math.floor((rtts.length - 1) / 2)]! : null,
    meanLoss: mean(losses),
    spanS: samples.length > 1 ? (samples[samples.length - 1]!.timeMs - samples[0]!.timeMs) / 1000 : 0,
  };
}

/**
 * Turns a transfer's progress into link samples. The transfer reports after every chunk batch
 * (bytes on the wire so far, all streams together); the sampler cuts that into slices of at least
 * `sliceMs` and emits each slice's wire bytes over its length. A slice, not a single batch, is the
 * sample because the streams run in parallel: one batch's own rate is its stream's share of the
 * link, not the link. What is not the link's rate is left out:
 *   - the start-up before the first batch lands (manifest, connections): the first slice starts there;
 *   - the tail, once no batch is left to start and streams go idle one by one: sampling stops;
 *   - a slice under `minBytes`, which says more about request overheads: it is carried on.
 * A transfer shorter than a slice yields no sample; the probe covers those.
 */
export class TransferSampler {
  private sliceStart: number | null = null;
  private sliceBytes = 0;
  private stopped = false;
  private readonly sliceMs: number;
  private readonly minBytes: number;
  private readonly now: () => number;

  constructor(
    private readonly emit: (sample: LinkSample) => void,
    opts: { sliceMs?: number; minBytes?: number; now?: () => number } = {},
  ) {
    this.sliceMs = opts.sliceMs ?? TRANSFER_SAMPLE_DEFAULTS.sliceMs;
    this.minBytes = opts.minBytes ?? TRANSFER_SAMPLE_DEFAULTS.minBytes;
    this.now = opts.now ?? (() => Date.now());
  }

  /** After a batch: `wireBytes` is the transfer's total so far; `saturated`, whether every stream still has work. */
  progress(wireBytes: number, saturated: boolean): void {
    if (this.stopped) return;
    const t = this.now();
    if (this.sliceStart === null) {
      this.sliceStart = t;
      this.sliceBytes = wireBytes;
      return;
    }
    if (!saturated) {
      this.stopped = true;
      return;
    }
    const bytes = wireBytes - this.sliceBytes;
    if (t - this.sliceStart < this.sliceMs || bytes < this.minBytes) return;
    this.emit({ timeMs: this.sliceStart, throughputMbps: (bytes * 8) / ((t - this.sliceStart) * 1000), rttMs: null, loss: null });
    this.sliceStart = t;
    this.sliceBytes = wireBytes;
  }
}

/** Half a second: the spacing of the traces the model learnt from (0.3-5 s), and 1 MiB at least. */
export const TRANSFER_SAMPLE_DEFAULTS = { sliceMs: 500, minBytes: 1 << 20 } as const;

/** The part of `fetch` probe uses, so tests and shaped links can pass their own. */
export type FetchLike = (url: string, init?: { method?: string; headers?: Record<string, string>; signal?: AbortSignal }) => Promise<{
  ok: boolean;
  status: number;
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null;
}>;

export interface ProbeOptions {
  /** Endpoint of the peer agent that returns a body of at least `transferBytes`. */
  readonly url: string;
  /** Small endpoint for round trips; defaults to `url` with `Range: bytes=0-0`. */
  readonly rttUrl?: string;
  readonly fetch?: FetchLike;
  /** Sent with every request: the peer's endpoint wants its token (`authorization`). */
  readonly headers?: Record<string, string>;
  /** Round trips to time; the sample keeps their median. */
  readonly rttRequests?: number;
  /** Stop reading the transfer after this many bytes... */
  readonly transferBytes?: number;
  /** ...or after this long, whichever comes first. */
  readonly maxTransferMs?: number;
  /** Per round-trip request; a request over it counts as lost. */
  readonly requestTimeoutMs?: number;
  /** Clock, ms; injectable for tests. */
  readonly now?: () => number;
  /** Stops the probe (an activity's cancellation): it rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export const PROBE_DEFAULTS = {
  rttRequests: 5,
  transferBytes: 8 * 1024 * 1024,
  maxTransferMs: 2_000,
  requestTimeoutMs: 2_000,
} as const;

/**
 * Measures one sample: RTT as the median of `rttRequests` small request round
 * trips, loss as the share of them that failed, throughput from one short
 * transfer timed from its first to its last byte (so the request's own round
 * trip is not counted as slow transfer).
 */
export async function probe(options: ProbeOptions): Promise<LinkSample> {
  const fetchFn: FetchLike = options.fetch ?? (globalThis.fetch as unknown as FetchLike);
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const n = options.rttRequests ?? PROBE_DEFAULTS.rttRequests;
  const timeout = options.requestTimeoutMs ?? PROBE_DEFAULTS.requestTimeoutMs;
  const rtts: number[] = [];
  let failed = 0;
  for (let i = 0; i < n; i++) {
    options.signal?.throwIfAborted();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeout);
    const cancel = () => ctl.abort();
    options.signal?.addEventListener('abort', cancel, { once: true });
    const start = now();
    try {
      const res = await fetchFn(options.rttUrl ?? options.url, {
        method: 'GET',
        headers: { ...options.headers, ...(options.rttUrl ? {} : { range: 'bytes=0-0' }) },
        signal: ctl.signal,
      });
      for await (const _ of bodyOf(res.body)) void _; // drain, so the connection is reused
      if (res.ok) rtts.push(now() - start);
      else failed++;
    } catch {
      options.signal?.throwIfAborted(); // cancelled, not lost
      failed++;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', cancel);
    }
  }
  const maxBytes = options.transferBytes ?? PROBE_DEFAULTS.transferBytes;
  const maxMs = options.maxTransferMs ?? PROBE_DEFAULTS.maxTransferMs;
  options.signal?.throwIfAborted();
  const ctl = new AbortController();
  // A stalled peer must not hang the probe: give up a request timeout after the transfer budget.
  const stall = setTimeout(() => ctl.abort(), maxMs + timeout);
  const cancel = () => ctl.abort();
  options.signal?.addEventListener('abort', cancel, { once: true });
  const start = now();
  let first: number | null = null;
  let firstBytes = 0;
  let bytes = 0;
  let end = start;
  try {
    const res = await fetchFn(options.url, { method: 'GET', signal: ctl.signal, ...(options.headers ? { headers: options.headers } : {}) });
    if (!res.ok) throw new Error(`probe transfer from ${options.url} failed: HTTP ${res.status} (expected 200/206)`);
    for await (const chunk of bodyOf(res.body)) {
      end = now();
      if (first === null) {
        first = end;
        firstBytes = chunk.byteLength;
      }
      bytes += chunk.byteLength;
      if (bytes >= maxBytes || end - start >= maxMs) break;
    }
  } catch (err) {
    options.signal?.throwIfAborted();
    // Aborted by the stall timer after some data: time what arrived.
    if (!ctl.signal.aborted || bytes === 0) throw err;
  } finally {
    clearTimeout(stall);
    options.signal?.removeEventListener('abort', cancel);
    ctl.abort();
  }
  options.signal?.throwIfAborted();
  // From first to last byte when there was more than one chunk; else the whole request.
  const spanMs = first !== null && end > first ? end - first : end - start;
  const counted = first !== null && end > first ? bytes - firstBytes : bytes;
  if (bytes === 0 || spanMs <= 0) throw new Error(`probe transfer from ${options.url} returned no data to time (${bytes} bytes)`);
  rtts.sort((a, b) => a - b);
  return {
    timeMs: start,
    throughputMbps: (counted * 8) / (spanMs * 1000),
    rttMs: rtts.length ? rtts[Math.floor((rtts.length - 1) / 2)]! : null,
    loss: n > 0 ? failed / n : null,
  };
}

async function* bodyOf(body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> {
  if (body === null) return;
  if (Symbol.asyncIterator in body) {
    yield* body as AsyncIterable<Uint8Array>;
    return;
  }
  const reader = (body as ReadableStream<Uint8Array>).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}
