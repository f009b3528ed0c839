/**
 * Writing a stored manifest's volume to a file (ChunkStore.assemble): from the store alone, or
 * from an earlier volume this store wrote (the basis) plus the chunks that changed, either into a
 * new file renamed over the destination or, when little changes, in place (patch-in-place.ts).
 */
import { closeSync, constants as fsConstants, openSync, promises as fs, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { orderMovesInPlace, planAssembly } from '../../core/manifest-basis';
import { fsyncPathAsync, tempPathBeside } from '../durable-files';
import { ASSEMBLE_WINDOW_BYTES, type AssemblyContext } from './assembly-context';
import { EarlySync } from './early-sync';
import { ManifestNotFoundError, MissingChunksError } from './errors';
import { patchInPlace } from './patch-in-place';
import type { AssembleFigures, AssembleOptions } from './types';
import { basisFor, recordVolume } from './volume-records';
import { writeStoreChunks } from './write-chunks';

/** In-place updates only when at most 1/IN_PLACE_MAX_CHANGED of the volume changes. */
const IN_PLACE_MAX_CHANGED = 4;

/**
 * Writes the volume of a stored manifest to `destPath`, crash-safe like every other write: the
 * file appears whole or not at all (temp file, fsync, rename, fsync of the directory). Chunks come
 * from the store, each verified on read, or, with `opts.basisPath`, from an earlier volume this
 * store wrote (see AssembleOptions).
 */
export async function assemble(ctx: AssemblyContext, rootHash: string, destPath: string, opts: AssembleOptions = {}): Promise<{ bytes: number; chunks: number }> {
  const m = await ctx.manifests.get(rootHash);
  if (!m) throw new ManifestNotFoundError(rootHash);
  const held = (hash: string) => ctx.state.chunks.has(hash);
  const basis = opts.basisPath === undefined ? undefined : await basisFor(ctx.dir, ctx.manifests, opts.basisPath);
  const plan = basis && 'manifest' in basis ? planAssembly(m.chunks, basis.manifest.chunks) : undefined;
  const fromStore = plan ? plan.fromStore : m.chunks;
  const missing = [...new Set(fromStore.map((c) => c.hash))].filter((h) => !held(h));
  if (missing.length > 0) throw new MissingChunksError(rootHash, missing);
  const figures: AssembleFigures = {
    basisUsed: plan !== undefined,
    ...(basis && 'refused' in basis ? { basisRefused: basis.refused } : {}),
    inPlaceBytes: 0,
    movedBytes: 0,
    storeBytes: 0,
    copyMs: 0,
    writeMs: 0,
    syncMs: 0,
  };
  if (plan && basis && 'manifest' in basis && opts.inPlace && opts.basisPath === destPath) {
    // (1) Runs of the basis that only moved (an insertion or deletion) are moved within the
    // file, the new chunks written from chunk files. Needs every chunk of the new manifest in
    // the store, so that a crash mid-update can be redone from the store alone.
    const moves = orderMovesInPlace(plan.runs);
    if (moves && plan.storeBytes <= m.totalBytes / IN_PLACE_MAX_CHANGED && m.chunks.every((c) => held(c.hash))) {
      figures.inPlace = true;
      await patchInPlace(ctx, m, destPath, plan.fromStore, moves, figures);
      opts.onFigures?.(figures);
      return { bytes: m.totalBytes, chunks: m.chunks.length };
    }
    // (2) Otherwise, when little is not in place: every chunk not in place from its chunk file
    // (redo needs only those).
    if (m.totalBytes - plan.inPlaceBytes <= m.totalBytes / IN_PLACE_MAX_CHANGED) {
      const basisAt = new Map<number, string>();
      for (const c of basis.manifest.chunks) basisAt.set(c.offset, c.hash);
      const changed = m.chunks.filter((c) => basisAt.get(c.offset) !== c.hash);
      if (changed.every((c) => held(c.hash))) {
        figures.inPlace = true;
        await patchInPlace(ctx, m, destPath, changed, [], figures);
        opts.onFigures?.(figures);
        return { bytes: m.totalBytes, chunks: m.chunks.length };
      }
    }
  }
  const tmp = tempPathBeside(destPath);
  const t0 = performance.now();
  // A kernel-side copy of the whole basis, then rewriting what is not in place, beats moving
  // every byte through this process once a quarter of the volume is in place (an insertion
  // in the middle leaves half of it in place).
  const copyBasis = plan !== undefined && plan.inPlaceBytes >= m.totalBytes / 4;
  if (copyBasis) {
    // Kernel-side copy (copy_file_range / sendfile): the bytes never enter this process.
    await fs.copyFile(opts.basisPath!, tmp, fsConstants.COPYFILE_EXCL);
    figures.inPlaceBytes = plan.inPlaceBytes;
  }
  const out = await fs.open(tmp, copyBasis ? 'r+' : 'wx');
  const early = new EarlySync(out);
  let bytes = 0;
  // The write of one window runs on the thread pool while the next window is read and hashed.
  let writing: Promise<unknown> = Promise.resolve();
  let basisFd: number | undefined;
  try {
    if (copyBasis) await out.truncate(m.totalBytes);
    figures.copyMs = performance.now() - t0;
    const t1 = performance.now();
    if (plan) {
      basisFd = openSync(opts.basisPath!, 'r');
      const windows = [Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES), Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES)];
      let flip = 0;
      for (const r of plan.runs) {
        if (copyBasis && r.from === r.offset) continue;
        // Basis ranges not in place (or no copy was made): read and write in windows.
        for (let done = 0; done < r.length; ) {
          const n = Math.min(ASSEMBLE_WINDOW_BYTES, r.length - done);
          // Two buffers in turn: one being written while the other is read into.
          const buf = windows[flip++ & 1]!.subarray(0, n);
          let got = 0;
          while (got < n) {
            const k = readSync(basisFd, buf, got, n - got, r.from + done + got);
            if (k === 0) throw new Error(`basis ${opts.basisPath} ended at ${r.from + done + got}; its manifest says it is longer`);
            got += k;
          }
          await writing;
          writing = out.write(buf, 0, n, r.offset + done);
          early.wrote(n);
          done += n;
          if (r.from === r.offset) figures.inPlaceBytes += n;
          else figures.movedBytes += n;
        }
      }
    }
    await writing;
    figures.storeBytes += await writeStoreChunks(ctx, rootHash, fromStore, out, early);
    await writing;
    bytes = m.totalBytes;
    figures.writeMs = performance.now() - t1;
    const t2 = performance.now();
    await early.settle();
    await out.sync();
    figures.syncMs = performance.now() - t2;
  } catch (err) {
    await writing.catch(() => undefined);
    await early.settle().catch(() => undefined);
    await out.close();
    await fs.rm(tmp, { force: true });
    throw err;
  } finally {
    if (basisFd !== undefined) closeSync(basisFd);
  }
  await out.close();
  const t3 = performance.now();
  await fs.rename(tmp, destPath);
  await fsyncPathAsync(dirname(destPath));
  await recordVolume(ctx.dir, destPath, rootHash);
  figures.syncMs += performance.now() - t3;
  opts.onFigures?.(figures);
  return { bytes, chunks: m.chunks.length };
}
