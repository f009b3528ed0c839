/**
 * Moving a format-1 store (`chunks/<xx>/<sha256>`, one file per chunk; see format.ts) into packs
 * on open: chunk files are read oldest first (format 1 kept recency in mtimes), stored through
 * the ordinary group commit (which verifies them: a bad one is dropped), and unlinked only once
 * their ADD records are durable, so a crash mid-migration resumes at the next open.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { SHA256_HEX } from '../../core/manifest';
import { fsyncPathAsync } from '../durable-files';
import type { ChunkIndex } from './chunk-index';
import { format1ChunksDir, TMP_PREFIX } from './format';

/** Chunk bytes per group when open() migrates a format-1 store. */
const MIGRATE_GROUP_BYTES = 4 << 20;

type PutMany = (entries: readonly { hash: string; data: Uint8Array }[]) => Promise<('stored' | 'duplicate' | 'rejected')[]>;

/** Moves the chunk files of a format-1 store under `dir` into packs with `putMany`; a no-op without one. */
export async function migrateFormat1(dir: string, state: ChunkIndex, putMany: PutMany): Promise<void> {
  const chunksDir = format1ChunksDir(dir);
  let subs: string[];
  try {
    subs = await fs.readdir(chunksDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const found: { path: string; hash: string; mtime: number }[] = [];
  for (const sub of subs) {
    const subDir = join(chunksDir, sub);
    if (!(await fs.stat(subDir)).isDirectory()) continue;
    for (const name of await fs.readdir(subDir)) {
      if (name.startsWith(TMP_PREFIX)) {
        await fs.rm(join(subDir, name), { force: true });
        state.counters.cleanedTempFiles++;
      } else if (SHA256_HEX.test(name)) found.push({ path: join(subDir, name), hash: name, mtime: (await fs.stat(join(subDir, name))).mtimeMs });
    }
  }
  // Oldest first, so that recency survives the move (format 1 kept it in mtimes).
  found.sort((a, b) => a.mtime - b.mtime);
  for (let k = 0; k < found.length; ) {
    const group: { path: string; hash: string; data: Buffer }[] = [];
    for (let bytes = 0; k < found.length && bytes < MIGRATE_GROUP_BYTES; k++) {
      const data = await fs.readFile(found[k]!.path);
      group.push({ ...found[k]!, data });
      bytes += data.length;
    }
    const results = await putMany(group);
    results.forEach((r, i) => {
      if (r === 'rejected') {
        state.counters.corruptChunks++;
        state.warnings.push(`chunk file ${group[i]!.path} does not hash to its name; dropped`);
      } else state.counters.migratedChunks++;
    });
    // Only now (their records durable) may the files go.
    await Promise.all(group.map((g) => fs.rm(g.path, { force: true })));
  }
  await fs.rm(chunksDir, { recursive: true, force: true });
  await fsyncPathAsync(dir);
}
