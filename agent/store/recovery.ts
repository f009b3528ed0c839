/**
 * Opening the chunk index (format in format.ts): the index log is replayed into memory, a torn
 * tail (a group commit a crash cut; never acknowledged) is cut off, temp files and packs that no
 * durable record points at are removed, and a log holding mostly dead records is rewritten.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fsyncPathAsync } from '../durable-files';
import type { ChunkIndex } from './chunk-index';
import { decodeIndexLog, LOG_MAGIC, LOG_NAME, PACK_ID, REC_ADD, TMP_PREFIX } from './format';
import type { PackWriter } from './pack-writer';

/** Replays `packsDir`/index.log into `state`; cuts a torn tail; removes packs nothing points at. */
export async function recoverIndex(state: ChunkIndex, writer: PackWriter, packsDir: string): Promise<void> {
  const logPath = join(packsDir, LOG_NAME);
  let buf: Buffer;
  try {
    buf = await fs.readFile(logPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    buf = Buffer.alloc(0);
  }
  const onDisk = new Map<string, number>();
  for (const name of await fs.readdir(packsDir)) {
    const m = PACK_ID.exec(name);
    if (m) onDisk.set(m[1]!, (await fs.stat(join(packsDir, name))).size);
    else if (name.startsWith(TMP_PREFIX)) {
      await fs.rm(join(packsDir, name), { force: true });
      state.counters.cleanedTempFiles++;
    }
  }
  const { records, validBytes } = decodeIndexLog(buf);
  if (buf.length > 0 && validBytes === 0) {
    // The log is written whole (temp file + rename) before anything is appended, so a bad header
    // is damage, not a crash: refuse rather than treat every pack as unreferenced and delete it.
    throw new Error(`chunk index ${logPath} does not start with ${LOG_MAGIC.toString('latin1')}: damaged; move it away to start the store empty (its packs are then removed)`);
  }
  const where = new Map<string, { pack: string; offset: number; length: number }>();
  for (const r of records) {
    if (r.type === REC_ADD) {
      where.delete(r.hash);
      where.set(r.hash, { pack: r.pack, offset: r.offset, length: r.length });
    } else if (where.get(r.hash)?.pack === r.pack) where.delete(r.hash);
  }
  for (const [hash, w] of where) {
    const size = onDisk.get(w.pack);
    if (size === undefined) continue; // the pack was deleted (all of it dead) before its DEL records were
    if (w.offset + w.length > size) {
      state.warnings.push(`chunk ${hash} is recorded at ${w.pack}.pack:${w.offset}+${w.length}, past the pack's end (${size}); dropped`);
      continue;
    }
    let pack = state.packs.get(w.pack);
    if (!pack) state.packs.set(w.pack, (pack = { id: w.pack, path: join(packsDir, `${w.pack}.pack`), size, live: 0 }));
    pack.live += w.length;
    state.chunks.set(hash, { pack, offset: w.offset, length: w.length });
    state.bytes += w.length;
  }
  // Packs nothing durable points at: a group commit cut before its records, or a pack emptied.
  for (const id of onDisk.keys()) {
    if (state.packs.has(id)) continue;
    await fs.rm(join(packsDir, `${id}.pack`), { force: true });
    state.counters.removedPacks++;
  }
  if (buf.length === 0) {
    await writer.writeNewLog([]); // a new store
  } else {
    // A torn tail: records of a group commit a crash cut; that commit was never acknowledged.
    if (validBytes < buf.length) state.counters.truncatedLogBytes += buf.length - validBytes;
    await writer.openLog(validBytes, buf.length);
    // Mostly dead records (many removals since the last rewrite): rewrite the log with the live ones.
    if (records.length > 2 * state.chunks.size + 4096) await writer.rewriteLog();
  }
  await fsyncPathAsync(packsDir);
}
