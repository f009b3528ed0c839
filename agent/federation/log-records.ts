/**
 * Record framing of the federation log file: [u32 length][u32 crc32][JSON payload], big-endian.
 * The checksum lets recovery tell a torn last write (crash mid-append) from a good record.
 */
import { crc32 } from 'node:zlib';
import type { HardState, LogEntry } from '../../core/consensus/cft-types';
import type { FederationEntry } from '../../core/consensus/entries';

export type LogRecord =
  | { t: 'entry'; entry: LogEntry<FederationEntry> }
  | { t: 'truncate'; from: number }
  | { t: 'meta'; meta: HardState };

export const HEADER_BYTES = 8;
/** A single record larger than this is corruption, not data (entries are small records). */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** Generic over the record type so other durable stores next to the log (agent/federation/bft-store.ts) share the framing. */
export function encodeRecord<R = LogRecord>(r: R): Buffer {
  const payload = Buffer.from(JSON.stringify(r), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export type Scan<R = LogRecord> = { records: R[]; goodBytes: number; tornTail: boolean };

/**
 * Reads records until the data ends. A bad record that runs to the end of the file is a torn
 * tail (the crash hit mid-write): the caller truncates it. A bad record followed by more bytes
 * cannot come from a torn write, so it is reported as corruption instead of silently dropped.
 */
export function scanRecords<R = LogRecord>(buf: Buffer, path: string): Scan<R> {
  const records: R[] = [];
  let off = 0;
  while (off < buf.length) {
    const rest = buf.length - off;
    if (rest < HEADER_BYTES) return { records, goodBytes: off, tornTail: true };
    const len = buf.readUInt32BE(off);
    const sum = buf.readUInt32BE(off + 4);
    const end = off + HEADER_BYTES + len;
    if (len > MAX_RECORD_BYTES || end > buf.length) {
      if (len > MAX_RECORD_BYTES && end < buf.length) throw corrupt(path, off, `length ${len} is above the ${MAX_RECORD_BYTES}-byte limit`);
      return { records, goodBytes: off, tornTail: true };
    }
    const payload = buf.subarray(off + HEADER_BYTES, end);
    if (crc32(payload) !== sum) {
      if (end === buf.length) return { records, goodBytes: off, tornTail: true };
      throw corrupt(path, off, `checksum ${crc32(payload).toString(16)} does not match the stored ${sum.toString(16)}`);
    }
    records.push(JSON.parse(payload.toString('utf8')) as R);
    off = end;
  }
  return { records, goodBytes: off, tornTail: false };
}

function corrupt(path: string, off: number, what: string): Error {
  return new Error(`federation log ${path} is corrupt at byte ${off}: ${what}; records after it exist, so this is not a torn last write. Restore the site's log from another site.`);
}
