/**
 * The target agent's record of what each attempt of a pull received, so that the figures of the
 * attempt that finishes count every attempt before it: bytes on the wire, bytes sent again, time.
 *
 * Why not the heartbeat alone: an attempt's heartbeat details reach Temporal at most every few
 * seconds, and not at all while the server is down. An attempt that pulls on through a server
 * outage (and may finish the pull there, its completion refused afterwards because the server
 * timed the attempt out) leaves heartbeat details that say a fraction of what it received. The
 * ledger is written beside the chunk store, by the process that receives the bytes, every
 * LEDGER_WRITE_MS and when the attempt ends however it ends; a kill -9 of that process loses at
 * most the last interval's counts. The heartbeat still carries the running totals (for the live
 * progress, and as the fallback when the ledger has no record, e.g. a store moved to another disk).
 *
 * One file per attempt (`<key>.<attempt>.json`), written only by that attempt: an attempt that
 * the server gave up on may still run for a moment beside its retry, and neither overwrites the
 * other's counts. The key names the activity (workflow, run, activity id) and the manifest root.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { undurableWireBytes, type PullCounters } from './client';

/** What one attempt received, as last written. */
export interface AttemptRecord extends PullCounters {
  attempt: number;
  /** Time this attempt spent pulling, until it ended or its last write. */
  durationMs: number;
  /** False while the attempt runs (or if its process died). */
  ended: boolean;
}

/** A pull's figures over attempts. */
export interface PullTotals {
  /** Attempts the figures cover. */
  attempts: number;
  wireBytes: number;
  rawBytes: number;
  chunks: number;
  /** Chunks newly stored: a later attempt of the same pull finds them in the store. */
  storedChunks: number;
  /**
   * Bytes on the wire that were sent a second time: chunks the source had served to this target
   * from this image before (an earlier attempt received them, or the source wrote them, but they
   * were not durable when it ended; or they arrived corrupt), as the source marks them
   * (RESENT_HEADER). From a source that does not mark them, the target's own estimate: chunks an
   * earlier attempt received but had not made durable, and chunks already stored when committed.
   */
  resentBytes: number;
  durationMs: number;
}

export const ZERO_TOTALS: PullTotals = { attempts: 0, wireBytes: 0, rawBytes: 0, chunks: 0, storedChunks: 0, resentBytes: 0, durationMs: 0 };

/** The totals of `records`, the attempts before the one that sums them. */
export function totalsOf(records: readonly AttemptRecord[]): PullTotals {
  const t = { ...ZERO_TOTALS };
  for (const r of records) {
    t.attempts++;
    t.wireBytes += r.wireBytes;
    t.rawBytes += r.rawBytes;
    t.chunks += r.chunks;
    t.storedChunks += r.storedChunks;
    // Without the source's word, an earlier attempt's undurable bytes were asked for again by a later one.
    t.resentBytes += r.sourceCountsResent ? r.resentWireBytes : r.duplicateWireBytes + undurableWireBytes(r);
    t.durationMs += r.durationMs;
  }
  return t;
}

/** `earlier` plus the attempt that is running (or just finished): its undurable bytes are not resent (yet). */
export function withAttempt(earlier: PullTotals, mine: PullCounters, durationMs: number): PullTotals {
  return {
    attempts: earlier.attempts + 1,
    wireBytes: earlier.wireBytes + mine.wireBytes,
    rawBytes: earlier.rawBytes + mine.rawBytes,
    chunks: earlier.chunks + mine.chunks,
    storedChunks: earlier.storedChunks + mine.storedChunks,
    resentBytes: earlier.resentBytes + (mine.sourceCountsResent ? mine.resentWireBytes : mine.duplicateWireBytes),
    durationMs: earlier.durationMs + durationMs,
  };
}

/** Heartbeat details are data from the server: take totals only when every figure is a number. */
export function parseTotals(v: unknown): PullTotals | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(ZERO_TOTALS) as (keyof PullTotals)[];
  if (!keys.every((k) => typeof o[k] === 'number' && Number.isFinite(o[k]) && (o[k] as number) >= 0)) return undefined;
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as unknown as PullTotals;
}

/** The key of one pull: its activity (stable over attempts) and the manifest it pulls. */
export function pullKey(workflowId: string, runId: string, activityId: string, root: string): string {
  return createHash('sha256').update(`${workflowId}\n${runId}\n${activityId}\n${root}`).digest('hex').slice(0, 40);
}

/** How often a running attempt writes its record. */
export const LEDGER_WRITE_MS = 500;
/** Records older than this are removed (a pull is retried within its activity's hours, not weeks); a retry that finds none counts from its heartbeat. */
const LEDGER_KEEP_MS = 7 * 24 * 3600 * 1000;

export interface PullLedger {
  records(key: string): AttemptRecord[];
  write(key: string, rec: AttemptRecord): void;
}

/** In memory: survives a server outage, not a restart of this process. For agents without a directory (tests). */
export function memoryPullLedger(): PullLedger {
  const m = new Map<string, Map<number, AttemptRecord>>();
  return {
    records: (key) => [...(m.get(key)?.values() ?? [])].map((r) => ({ ...r })),
    write: (key, rec) => {
      let e = m.get(key);
      if (!e) m.set(key, (e = new Map()));
      e.set(rec.attempt, { ...rec });
    },
  };
}

/** On disk, in `dir`. Writes are a temp file renamed into place: a crash leaves the old record or the new one. */
export function diskPullLedger(dir: string): PullLedger {
  mkdirSync(dir, { recursive: true });
  let pruned = 0;
  return {
    records(key) {
      // At the agent's start and then at most hourly: a record is a few hundred bytes per attempt.
      if (Date.now() - pruned > 3600_000) {
        prune(dir);
        pruned = Date.now();
      }
      const out: AttemptRecord[] = [];
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        return out;
      }
      for (const name of names) {
        if (!name.startsWith(`${key}.`) || !name.endsWith('.json')) continue;
        try {
          const rec = JSON.parse(readFileSync(join(dir, name), 'utf8')) as AttemptRecord;
          if (typeof rec.attempt === 'number' && typeof rec.wireBytes === 'number') out.push(rec);
        } catch {
          // Unreadable (cannot happen with rename, but a disk can lie): the heartbeat's totals stand in.
        }
      }
      return out.sort((a, b) => a.attempt - b.attempt);
    },
    write(key, rec) {
      const path = join(dir, `${key}.${rec.attempt}.json`);
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(rec));
      renameSync(tmp, path);
    },
  };
}

function prune(dir: string): void {
  const now = Date.now();
  for (const name of readdirSync(dir)) {
    try {
      if (now - statSync(join(dir, name)).mtimeMs > LEDGER_KEEP_MS) rmSync(join(dir, name), { force: true });
    } catch {
      // Removed meanwhile.
    }
  }
}
