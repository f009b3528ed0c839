/**
 * A live workload for tests and benchmarks: writers that PUT new keys to the sample workload at
 * about 1 MB/s and record every key the service acknowledged (200). Writes refused with 503
 * (frozen for the cut-over) or failing to connect (source gone) were never acknowledged.
 */
import { sampleValue } from '../../agent/workload/sample';

/** Two writers, each a 16 KiB value every ~32 ms: ~1 MB/s of new data. */
export const VALUE_BYTES = 16 << 10;
const WRITERS = 2;
const PERIOD_MS = 32;
/** How soon a refused write is sent again (ms), for the first RETRY_FAST_FOR_MS of refusals; then every PERIOD_MS. */
const RETRY_MS = 4;
const RETRY_FAST_FOR_MS = 1_000;

/** Pseudo-random text (as the sample's own values), distinct per key: compresses like real data. */
export function valueFor(key: string): string {
  return sampleValue(1_000_000 + Number(key.slice(-7)), VALUE_BYTES);
}

export interface WriterLog {
  acked: Map<string, number>;
  frozen: number;
  failed: number;
  attempted: number;
  ackedBytes: number;
  startedAt: number;
  firstFrozenAt?: number;
}

/**
 * The longest time between two acknowledged writes (any writer): what a client saw of a cut-over,
 * and when it ended (ms since the epoch; 0 for none). `after`: only gaps that end after this time
 * (ms since the epoch) count.
 */
export function longestAckGapAt(log: WriterLog, after = 0): { ms: number; endedAt: number } {
  const times = [...log.acked.values()].sort((a, b) => a - b);
  let gap = { ms: 0, endedAt: 0 };
  for (let i = 1; i < times.length; i++) if (times[i]! > after && times[i]! - times[i - 1]! > gap.ms) gap = { ms: times[i]! - times[i - 1]!, endedAt: times[i]! };
  return gap;
}

/** The gap between the last acknowledged write at or before `t` and the first one after it: what a client saw of the moment t. */
export function ackGapAround(log: WriterLog, t: number): number | undefined {
  let before = -Infinity;
  let after = Infinity;
  for (const at of log.acked.values()) {
    if (at <= t) before = Math.max(before, at);
    else after = Math.min(after, at);
  }
  return Number.isFinite(before) && Number.isFinite(after) ? after - before : undefined;
}

/**
 * PUTs new keys to `address` until stopped; never throws (the source disappears at the end).
 * `follow`: asked for the address again after a refused write (a client without a stable address
 * that looks the workload up, say in the federation log).
 */
export function startWriter(address: string, follow?: () => Promise<string | undefined>): { log: WriterLog; stop: () => Promise<void> } {
  const log: WriterLog = { acked: new Map(), frozen: 0, failed: 0, attempted: 0, ackedBytes: 0, startedAt: Date.now() };
  let running = true;
  let at = address;
  const writer = async (w: number) => {
    let n = 0;
    // The writers take turns, half a period apart, so a write leaves every PERIOD_MS / WRITERS.
    let t0 = Date.now() + (w * PERIOD_MS) / WRITERS;
    let refusedSince: number | undefined;
    if (w > 0) await new Promise((r) => setTimeout(r, (w * PERIOD_MS) / WRITERS));
    // A refused write's key and value, kept for its retry (a 16 KiB value costs ~0.1 ms to make,
    // and a frozen source is asked again every RETRY_MS).
    let retry: { key: string; body: string } | undefined;
    while (running) {
      const key = `live-${w}${String(n++).padStart(6, '0')}`;
      const body = retry?.key === key ? retry.body : valueFor(key);
      // A write that was refused is sent again, the same key and value, RETRY_MS later, as a
      // client with a write pending does, not at the next slot of the pace: so the gap a client
      // sees ends when the service answers again, not up to a period later.
      let refused = false;
      log.attempted++;
      try {
        const res = await fetch(`${at}/kv/${key}`, { method: 'PUT', body, signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          log.acked.set(key, Date.now());
          log.ackedBytes += VALUE_BYTES;
        }
        else if (res.status === 503) {
          log.frozen++;
          log.firstFrozenAt ??= Date.now();
        } else log.failed++;
        refused = res.status !== 200;
        if (refused && follow) at = (await follow().catch(() => undefined)) ?? at;
      } catch {
        log.failed++; // connection refused once the source is decommissioned: not acknowledged
        refused = true;
        if (follow) at = (await follow().catch(() => undefined)) ?? at;
      }
      // Pace to the target rate, whatever each request took; a refused write is retried soon.
      if (refused) {
        refusedSince ??= Date.now();
        await new Promise((r) => setTimeout(r, Date.now() - refusedSince! < RETRY_FAST_FOR_MS ? RETRY_MS : PERIOD_MS));
        n--; // the retry keeps the refused write's slot: the pace is of acknowledged writes
        retry = { key, body };
        continue;
      }
      refusedSince = undefined;
      const wait = t0 + n * PERIOD_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Behind by more than a period (a pause): go on at the pace from here, no burst to catch up.
      else if (wait < -PERIOD_MS) t0 -= wait;
    }
  };
  const done = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  return {
    log,
    stop: async () => {
      running = false;
      await done;
    },
  };
}
