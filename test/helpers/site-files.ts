/**
 * A site's durable state read from its files, read-only, while its agent runs: its replica of the
 * federation log, and which chunks its store holds. Never opened through FederationLog or
 * ChunkStore, which repair (truncate) what they open: a record being written when the file is read
 * is simply left out, as a torn tail.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FEDERATION_LOG_FILE } from '../../agent/federation/log';
import { scanRecords, type LogRecord } from '../../agent/federation/log-records';
import { decodeIndexLog, LOG_NAME, packsDir, REC_ADD } from '../../agent/store/format';
import type { HardState, LogEntry } from '../../core/consensus/cft-types';
import type { FederationEntry } from '../../core/consensus/entries';

export interface LogHead {
  /** Entries, truncations applied. */
  entries: LogEntry<FederationEntry>[];
  meta: HardState;
}

/** The federation log in `siteDir` as its records say now (empty if the file is not there yet). */
export function readFederationLog(siteDir: string): LogHead {
  const path = join(siteDir, FEDERATION_LOG_FILE);
  const head: LogHead = { entries: [], meta: { term: 0, vote: null, commit: 0 } };
  if (!existsSync(path)) return head;
  for (const r of scanRecords<LogRecord>(readFileSync(path), path).records) {
    if (r.t === 'entry') head.entries.push(r.entry);
    else if (r.t === 'truncate') head.entries.length = Math.min(head.entries.length, r.from - 1);
    else head.meta = { ...r.meta };
  }
  return head;
}

/** The hashes the chunk store in `storeDir` holds now: every ADD in its index log (a chunk is in the store once that record is written). */
export function storedChunks(storeDir: string): Set<string> {
  const path = join(packsDir(storeDir), LOG_NAME);
  const held = new Set<string>();
  if (!existsSync(path)) return held;
  for (const r of decodeIndexLog(readFileSync(path)).records) {
    if (r.type === REC_ADD) held.add(r.hash);
    else held.delete(r.hash);
  }
  return held;
}
