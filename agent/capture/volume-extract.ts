/**
 * Writes a volume (a directory, captured as a tar image) at the target straight from the chunk
 * store: the image's chunks are read in manifest order, each checked against its hash, and
 * streamed into the tar extractor. No intermediate image file is written (it used to be written,
 * fsynced, read back and deleted: most of the final round's time inside the downtime window).
 *
 * Unpacked beside the volume, made durable (every file and directory fsynced), then swapped in by
 * rename, so a crash never leaves a half-written volume where the workload looks for it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import type { ChunkStore } from '../store/chunk-store';
import { MissingChunksError } from '../store/errors';
import { fsyncAllAsync, fsyncPathAsync } from '../durable-files';
import type { Manifest } from '../../core/manifest';
import { TarWalker, UnsupportedImageError, type TarEntry } from './tar-walk';
import { recoverVolumeLocked, removeImageRecordAsync, withVolumeLock, writeImageRecordAsync } from './volume-journal';
import { patchVolume, type ExtractFigures, type PatchHooks } from './volume-patch';

export type { ExtractFigures } from './volume-patch';

/** Chunks go to the extractor in runs of about this many bytes: it writes each file in fewer, larger writes. */
const YIELD_BYTES = 4 << 20;

/**
 * The manifest's bytes, in runs of whole chunks. Reads through one cached descriptor per pack file
 * (the store's own get() opens the pack for every chunk) and checks each chunk's hash as the store
 * does (its `verifyOnRead`, on by default). A chunk that fails the check, or moved meanwhile, is
 * read again through the store, which checks it again, evicts it and throws if it is bad: a rotted
 * chunk is never written out.
 */

async function* chunksOf(store: ChunkStore, manifest: Manifest, onBatch?: () => void): AsyncGenerator<Buffer> {
  const fds = new Map<string, number>();
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    for (const c of manifest.chunks) {
      const at = store.locateChunk(c.hash);
      let data: Buffer | undefined;
      if (at && at.length === c.length) {
        try {
          let fd = fds.get(at.path);
          if (fd === undefined) fds.set(at.path, (fd = openSync(at.path, 'r')));
          const buf = Buffer.allocUnsafe(at.length);
          let got = 0;
          while (got < at.length) {
            const n = readSync(fd, buf, got, at.length - got, at.offset + got);
            if (n === 0) break;
            got += n;
          }
          if (got === at.length && (!store.verifyOnRead || createHash('sha256').update(buf).digest('hex') === c.hash)) data = buf;
        } catch {
          data = undefined;
        }
      }
      if (!data) {
        data = await store.get(c.hash);
        if (!data) throw new MissingChunksError(manifest.rootHash, [c.hash]);
      }
      pending.push(data);
      pendingBytes += data.length;
      if (pendingBytes >= YIELD_BYTES) {
        onBatch?.();
        // To the event loop between batches: a generator's yield alone is a microtask, and the
        // stream that pulls from it takes up to 16 batches at once, so without this a full
        // extraction ran 300-540 ms at a time with nothing else served (the agent's transfers, the
        // fronts, heartbeats: a CPU profile of the 1 GiB downtime benchmark, 2026-12-03).
        await new Promise((r) => setImmediate(r));
        yield Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
      }
    }
    if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

/**
 * Every file and directory under `dir` (itself included) fsynced, on the thread pool and several at
 * a time: a synchronous fsync of a freshly written 1 GiB volume blocked the agent's event loop (its
 * fronts, every other transfer) for over a second.
 */
async function fsyncTree(dir: string): Promise<void> {
  const paths: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) paths.push(p);
    }
    paths.push(d);
  };
  walk(dir);
  await fsyncAllAsync(paths);
}

/**
 * Replaces the directory `volume` with the image `manifest` describes (a tar of the volume).
 * `onBatch` is called every few MiB (the caller heartbeats). Returns what was written.
 *
 * First, whatever a crash left of an earlier patch is finished or dropped (recoverVolume). Then,
 * when the volume holds a recorded image (an earlier round's), it is patched in place: only what
 * differs is written (volume-patch.ts). Otherwise, or when anything about the volume or either
 * image is not as recorded, the whole image is extracted, as follows.
 *
 * Each call unpacks into a staging directory of its own (a retried attempt never writes into one
 * that a stray earlier attempt is still filling; it removes those first, so the stray one fails).
 * The swap renames the old volume aside, the new one into place, fsyncs the parent and then drops
 * the old one; a crash between the two renames leaves `<volume>.old`, which the next call puts
 * back before it starts. The record of the image is removed before the swap and written after it.
 */
export async function extractVolume(
  store: ChunkStore,
  manifest: Manifest,
  volume: string,
  onBatch?: () => void,
  opts: { hooks?: PatchHooks; wholeOnly?: boolean } = {},
): Promise<ExtractFigures> {
  return withVolumeLock(volume, () => extractLocked(store, manifest, volume, onBatch, opts), onBatch);
}

async function extractLocked(store: ChunkStore, manifest: Manifest, volume: string, onBatch: (() => void) | undefined, opts: { hooks?: PatchHooks; wholeOnly?: boolean }): Promise<ExtractFigures> {
  const t0 = performance.now();
  const parent = dirname(volume);
  const name = basename(volume);
  const old = `${volume}.old`;
  if (!existsSync(volume) && existsSync(old)) renameSync(old, volume);
  rmSync(old, { recursive: true, force: true });
  await recoverVolumeLocked(volume);
  let fallback = 'the volume is not there yet';
  if (opts.wholeOnly) fallback = 'asked for a whole extraction';
  else if (existsSync(volume)) {
    const patched = await patchVolume(store, manifest, volume, { onBatch, hooks: opts.hooks });
    if ('figures' in patched) return patched.figures;
    fallback = patched.fallback;
  }
  for (const sibling of readdirSync(parent)) if (sibling.startsWith(`${name}.staging`)) rmSync(join(parent, sibling), { recursive: true, force: true });
  const staging = `${volume}.staging-${randomBytes(6).toString('hex')}`;
  mkdirSync(staging, { recursive: true });
  // The entries, where each lies in the image: recorded so that the next round can patch.
  const entries: TarEntry[] = [];
  let indexable = true;
  const walker = new TarWalker(0, (e) => entries.push(e));
  async function* indexed(): AsyncGenerator<Buffer> {
    for await (const buf of chunksOf(store, manifest, onBatch)) {
      if (indexable) {
        try {
          walker.feed(buf);
        } catch (err) {
          // Not an image this target can patch later (node-tar still extracts it): no record.
          if (!(err instanceof UnsupportedImageError)) throw err;
          indexable = false;
        }
      }
      yield buf;
    }
  }
  try {
    await pipeline(Readable.from(indexed()), tar.x({ cwd: staging, strict: true }));
    await fsyncTree(staging);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  // The directory fsyncs and the record's write on the thread pool: right after a big volume's
  // data was flushed, a synchronous fsync can wait for the disk a long while, and this event loop
  // serves the agent's transfers and the fronts meanwhile.
  await removeImageRecordAsync(volume);
  if (existsSync(volume)) renameSync(volume, old);
  renameSync(staging, volume);
  await fsyncPathAsync(parent);
  await rm(old, { recursive: true, force: true });
  if (indexable && walker.ended) {
    try {
      await writeImageRecordAsync(volume, manifest.rootHash, entries);
    } catch {
      // An entry node-tar did not write as the image says: no record, so the next round extracts whole.
      await removeImageRecordAsync(volume);
    }
  }
  const files = entries.filter((e) => e.type !== 'dir');
  return {
    method: 'full',
    fallback,
    bytesWritten: indexable && walker.ended ? files.reduce((a, e) => a + e.size, 0) : manifest.totalBytes,
    filesWritten: files.length,
    filesKept: 0,
    bytesKept: 0,
    filesRemoved: 0,
    dirsWritten: entries.length - files.length,
    durationMs: performance.now() - t0,
  };
}
