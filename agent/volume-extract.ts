/**
 * Writes a volume (a directory, captured as a tar image) at the target straight from the chunk
 * store: the image's chunks are read in manifest order, each checked against its hash, and
 * streamed into the tar extractor. No intermediate image file is written (it used to be written,
 * fsynced, read back and deleted: most of the final round's time inside the downtime window).
 *
 * Unpacked beside the volume, made durable (every file and directory fsynced), then swapped in by
 * rename, so a crash never leaves a half-written volume where the workload looks for it.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import type { ChunkStore } from './chunk-store';
import { ChunkHashMismatchError, MissingChunksError } from './chunk-errors';
import type { Manifest } from '../core/manifest';

/**
 * The manifest's bytes, in runs of whole chunks. Reads through one cached descriptor per pack file (the
 * store's own get() opens the pack for every chunk); a chunk whose bytes do not match its hash,
 * or that moved meanwhile, is read again through the store, which checks and evicts.
 */
/** Chunks go to the extractor in runs of about this many bytes: it writes each file in fewer, larger writes. */
const YIELD_BYTES = 4 << 20;

async function* chunksOf(store: ChunkStore, manifest: Manifest): AsyncGenerator<Buffer> {
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
          if (got === at.length && createHash('sha256').update(buf).digest('hex') === c.hash) data = buf;
        } catch {
          data = undefined;
        }
      }
      if (!data) {
        data = await store.get(c.hash);
        if (!data) throw new MissingChunksError(manifest.rootHash, [c.hash]);
        const actual = createHash('sha256').update(data).digest('hex');
        // Never written out: the volume would not be the image the source froze.
        if (actual !== c.hash) throw new ChunkHashMismatchError(c.hash, actual, 'read');
      }
      pending.push(data);
      pendingBytes += data.length;
      if (pendingBytes >= YIELD_BYTES) {
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

function fsyncTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces the directory `volume` with the image `manifest` describes (a tar of the volume). */
export async function extractVolume(store: ChunkStore, manifest: Manifest, volume: string): Promise<void> {
  const staging = `${volume}.staging`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    await pipeline(Readable.from(chunksOf(store, manifest)), tar.x({ cwd: staging, strict: true }));
    fsyncTree(staging);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  rmSync(volume, { recursive: true, force: true });
  renameSync(staging, volume);
  fsyncPath(dirname(volume));
}
