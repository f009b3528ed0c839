/**
 * The chunk store's on-disk format (store format 2, "packs"): the one place it is described.
 * Every other file of agent/store/ points here, and the constants and record codec below are the
 * only code that knows the bytes.
 *
 * Layout under the store's `dir`:
 *   packs/index.log                                 the chunk index: LOG_MAGIC, then an
 *                                                  append-only log of fixed-size checksummed
 *                                                  records (ADD hash -> pack, offset, length;
 *                                                  DEL hash from pack)
 *   packs/<16 hex digits>.pack                      chunk bytes, appended one group commit at a time
 *   manifests/pinned/<root hash>.ffm               manifests whose chunks are never evicted
 *   manifests/baseline/<root hash>.ffm             manifests kept as a dedup baseline: evictable
 *                                                  (`.ffm`: the binary manifest of
 *                                                  core/manifest-delta.ts, without a base, ~35
 *                                                  bytes a chunk; `.json`, ~110 bytes a chunk,
 *                                                  as written before, still read; a
 *                                                  release from before .ffm skips .ffm files with
 *                                                  a warning, so such a store is not for a
 *                                                  downgrade: its baselines and pins would be lost)
 *   volumes/<sha256 of the path>.json               what assemble() last wrote at a path, and that
 *                                                  file's identity (see volume-records.ts)
 *
 * Index record (REC_BYTES = 53 bytes): type u8 (ADD 1, DEL 2), pack id (8 bytes, the pack file's
 * name in hex), offset u32 LE, length u32 LE, sha256 (32 bytes), CRC-32 (u32 LE) of the 49 bytes
 * before it. DEL records carry offset and length 0. Replaying the log in order gives the index:
 * the last ADD of a hash wins (compaction appends a new ADD for a moved chunk), and a DEL removes
 * the hash only if it names the pack the hash is currently in.
 *
 * Chunks: a group commit (putMany, or concurrent puts merged; pack-writer.ts) appends the group's
 * bytes to the current pack and fdatasyncs it, then appends one ADD record per chunk to the index
 * log and fdatasyncs that: a chunk is in the store once its ADD record is durable, and an ADD
 * record is only ever written after the bytes it points at are. Two fsyncs per group instead of
 * two per chunk (format 1 wrote one file per chunk: temp file, fsync, rename, directory fsync).
 * A pack's directory entry is fsynced before any record points into it. A pack takes appends up
 * to PACK_MAX_BYTES (64 MiB, pack-writer.ts); the next group starts a new one, and so does the
 * first group after each open. Bytes past the last durable record of a pack are dead space.
 *
 * Recovery (open; recovery.ts) replays the log and truncates it at the first record that is short
 * or fails its CRC-32 (a write torn by a crash: never acknowledged), drops a record that points
 * past its pack's end, and deletes packs no live record points at. Pack bytes no durable record
 * points at are dead and are reclaimed (a pack nothing live points at is deleted, one less than
 * half live is compacted: its live chunks re-appended as a group commit, then the pack deleted; a
 * crash in between leaves two copies and the later ADD wins; eviction.ts). A log whose header is not LOG_MAGIC is damage, not a crash (the log
 * is created whole, by temp file and rename, before anything is appended): open refuses it.
 * Removals (eviction, gc, delete, a chunk found corrupt) append DEL records, durable before they
 * return, so a removed chunk never comes back after a restart. A log holding more than twice as
 * many records as live chunks (plus 4096) is rewritten whole at open (one ADD per live chunk, in
 * recency order; temp file, fsync, rename). Recency itself is not recorded: it lives in memory,
 * and after a restart it is the log's order.
 *
 * Manifests (manifests.ts; binary, above: a final round's baseline of 58 000 chunks is 2 MB
 * instead of 6.3 MB of JSON, and encodes faster than it serialises) and volume records
 * (volume-records.ts; JSON) are written crash-safe: a `.tmp-` file in the same directory, fsync, rename, fsync of the directory
 * (writeFileDurableAsync in agent/durable-files.ts); a crash leaves at most a `.tmp-` file,
 * removed by the next open(). A manifest is pinned or baseline by the directory it is in;
 * changing retention is a rename (a crash in between can leave it in both: open keeps it pinned).
 * Chunk bytes are verified against their hash on put and (by default) on read.
 *
 * Format 1 (`chunks/<xx>/<sha256>`, one file per chunk; format1-migration.ts) is migrated on
 * open: each chunk file is read, verified (a bad one is dropped), appended to packs, and unlinked
 * once its ADD record is durable; a crash mid-migration resumes at the next open. Manifests and
 * volume records kept their format-1 files (the format above is theirs in both).
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export { TMP_PREFIX } from '../durable-files';

export const LOG_NAME = 'index.log';
export const LOG_MAGIC = Buffer.from('FFCHUNK2', 'latin1');
export const PACK_ID = /^([0-9a-f]{16})\.pack$/;
export const REC_ADD = 1;
export const REC_DEL = 2;
/** type u8, pack id (8 bytes), offset u32, length u32, sha256 (32 bytes), CRC-32 of the 49 before it. */
export const REC_BYTES = 53;

export type Retention = 'pinned' | 'baseline';
export const RETENTIONS = ['pinned', 'baseline'] as const;

export interface LogRecord {
  type: typeof REC_ADD | typeof REC_DEL;
  pack: string;
  offset: number;
  length: number;
  hash: string;
}

export function encodeRecord(r: LogRecord, out: Buffer, at: number): void {
  out.writeUInt8(r.type, at);
  out.write(r.pack, at + 1, 8, 'hex');
  out.writeUInt32LE(r.offset, at + 9);
  out.writeUInt32LE(r.length, at + 13);
  out.write(r.hash, at + 17, 32, 'hex');
  out.writeUInt32LE(crc32(out.subarray(at, at + 49)), at + 49);
}

/** The records of an index log, and the length of its valid prefix (a torn tail is not part of it). */
export function decodeIndexLog(buf: Buffer): { records: LogRecord[]; validBytes: number } {
  const records: LogRecord[] = [];
  if (buf.length < LOG_MAGIC.length || !buf.subarray(0, LOG_MAGIC.length).equals(LOG_MAGIC)) return { records, validBytes: 0 };
  let at = LOG_MAGIC.length;
  for (; at + REC_BYTES <= buf.length; at += REC_BYTES) {
    const type = buf.readUInt8(at);
    if ((type !== REC_ADD && type !== REC_DEL) || crc32(buf.subarray(at, at + 49)) !== buf.readUInt32LE(at + 49)) break;
    records.push({ type, pack: buf.toString('hex', at + 1, at + 9), offset: buf.readUInt32LE(at + 9), length: buf.readUInt32LE(at + 13), hash: buf.toString('hex', at + 17, at + 49) });
  }
  return { records, validBytes: at };
}

/** A whole index log holding `records`: the header, then the records. */
export function encodeIndexLog(records: readonly LogRecord[]): Buffer {
  const buf = Buffer.alloc(LOG_MAGIC.length + records.length * REC_BYTES);
  LOG_MAGIC.copy(buf, 0);
  records.forEach((r, k) => encodeRecord(r, buf, LOG_MAGIC.length + k * REC_BYTES));
  return buf;
}

export function packsDir(dir: string): string {
  return join(dir, 'packs');
}

export function packPath(dir: string, id: string): string {
  return join(packsDir(dir), `${id}.pack`);
}

export function manifestsDir(dir: string, r: Retention): string {
  return join(dir, 'manifests', r);
}

/** How a manifest file is encoded, by its name's suffix: binary (written), or JSON (written before, read). */
export type ManifestEncoding = 'ffm' | 'json';
export const MANIFEST_ENCODINGS: readonly ManifestEncoding[] = ['ffm', 'json'];

export function manifestPath(dir: string, root: string, r: Retention, encoding: ManifestEncoding = 'ffm'): string {
  return join(manifestsDir(dir, r), `${root}.${encoding}`);
}

export function volumesDir(dir: string): string {
  return join(dir, 'volumes');
}

/** Format 1's chunk directory (`chunks/<xx>/<sha256>`), read only to migrate it. */
export function format1ChunksDir(dir: string): string {
  return join(dir, 'chunks');
}
