/**
 * assemble()'s in-place update of a volume file (AssembleOptions.inPlace): only the ranges that
 * differ are written, all from the store, behind a durable 'patching' record (volume-records.ts).
 */
import { readSync, promises as fs } from 'node:fs';
import type { BasisRun } from '../../core/manifest-basis';
import type { ChunkRef, Manifest } from '../../core/manifest';
import { ASSEMBLE_WINDOW_BYTES, type AssemblyContext } from './assembly-context';
import { EarlySync } from './early-sync';
import type { AssembleFigures } from './types';
import { recordPatching, recordVolume } from './volume-records';
import { writeStoreChunks } from './write-chunks';

/**
 * Updates the volume at `path` (which holds basis manifest `basis`, per this store's record) to
 * manifest `m` in place, writing only the ranges that differ, all from chunk files (so the update
 * can always be redone from the store alone). Not atomic like the temp-file path, but never
 * silently torn: a durable record marks the file 'patching' before the first write, so after a
 * crash the file is known incomplete (its record no longer matches it: basisFor refuses it, and
 * volumeState says 'incomplete') and the next assemble rewrites it whole from the store.
 */
export async function patchInPlace(ctx: AssemblyContext, m: Manifest, path: string, changed: readonly ChunkRef[], moves: readonly BasisRun[], figures: AssembleFigures): Promise<void> {
  const t0 = performance.now();
  await recordPatching(ctx.dir, path, m.rootHash);
  const out = await fs.open(path, 'r+');
  const early = new EarlySync(out);
  try {
    const t1 = performance.now();
    figures.copyMs = t1 - t0;
    // Moves first (in the order orderMovesInPlace gives, each run copied away from the bytes it
    // has yet to read), then the new chunks, some of which land where moved bytes were read.
    // Two windows in turn: one written (on the thread pool) while the next is read. Within a
    // run the write of a window never touches the bytes of the next window's read: windows
    // advance in the direction of the move, so a window's destination lies behind the next
    // one's source. Each run's writes end before the next run starts.
    const windows = [Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES), Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES)];
    let flip = 0;
    let writing: Promise<unknown> = Promise.resolve();
    try {
      for (const r of moves) {
        const backwards = r.from < r.offset;
        for (let done = 0; done < r.length; ) {
          const n = Math.min(ASSEMBLE_WINDOW_BYTES, r.length - done);
          const at = backwards ? r.length - done - n : done;
          const buf = windows[flip++ & 1]!;
          let got = 0;
          while (got < n) {
            const k = readSync(out.fd, buf, got, n - got, r.from + at + got);
            if (k === 0) throw new Error(`${path} ended at ${r.from + at + got}; its basis manifest says it is longer`);
            got += k;
          }
          await writing;
          writing = out.write(buf, 0, n, r.offset + at);
          early.wrote(n);
          done += n;
          figures.movedBytes += n;
        }
        await writing;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      await writing.catch(() => undefined);
    }
    figures.storeBytes = await writeStoreChunks(ctx, m.rootHash, changed, out, early);
    await out.truncate(m.totalBytes);
    figures.inPlaceBytes = m.totalBytes - figures.storeBytes - figures.movedBytes;
    const t2 = performance.now();
    figures.writeMs = t2 - t1;
    await early.settle();
    await out.sync();
    figures.syncMs = performance.now() - t2;
  } finally {
    await early.settle().catch(() => undefined);
    await out.close();
  }
  const t3 = performance.now();
  await recordVolume(ctx.dir, path, m.rootHash);
  figures.syncMs += performance.now() - t3;
}
