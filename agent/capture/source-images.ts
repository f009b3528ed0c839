/**
 * A site's point-in-time volume images and their manifests, by root hash: what the transfer
 * server serves chunks from. A directory volume is archived (deterministic tar) into one image
 * file while it is chunked and hashed, in a single pass; a plain file can be served in place.
 * Chunks are read from the image by offset, so the source never copies them into a chunk store.
 */
import { closeSync, constants as fsConstants, createReadStream, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cp, lstat, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import type { ChunkerParams } from '../../core/chunking';
import type { ChunkRef, Manifest } from '../../core/manifest';
import { FinalImages } from './final-images';
import { buildManifestFromStream, verifyManifest } from './manifest-builder';
import { buildManifestFromFileParallel } from './parallel-capture';

interface Entry {
  manifest: Manifest;
  imagePath: string;
  byHash: Map<string, ChunkRef>;
}

/** What a capture read and what it took from the previous round's record (./reuse-cache.ts). */
export interface CaptureReuse {
  /** Regular files whose data was read (and chunked and hashed). */
  filesRead: number;
  /** Regular files whose stat tuple was unchanged: their chunks were taken from the previous round. */
  filesReused: number;
  /** Bytes of the image read from the volume (file data) and chunked. */
  bytesRead: number;
  /** Chunks hashed here / taken from the previous round's manifest. */
  chunksHashed: number;
  chunksReused: number;
}

export interface ImageResult {
  manifest: Manifest;
  scanMs: number;
  reuse?: CaptureReuse;
}

/** Deterministic archive of a directory: sorted entries, no owners, fixed mtimes. */
export function tarStream(dir: string): AsyncIterable<Uint8Array> {
  return tar.c({ cwd: dir, portable: true, mtime: new Date(0), noDirRecurse: false }, readdirSync(dir).sort()) as unknown as AsyncIterable<Uint8Array>;
}

/**
 * tar refuses a file whose size changed while it was read ("did not encounter expected EOF" /
 * "encountered unexpected EOF"): a live workload appending to its volume during a pre-copy round.
 */
function changedWhileRead(err: unknown): boolean {
  return /(did not encounter expected|encountered unexpected) EOF/.test(String((err as Error)?.message ?? err));
}

/** Manifests of released images kept as delta bases. */
const PAST_MANIFESTS = 8;

export class SourceImages {
  private readonly cache = new Map<string, Entry>();
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private readonly fds = new Map<string, number>();
  private captures = 0;
  /** Cut-over images announced to waiting targets (GET /finals/<slot>). */
  readonly finals: FinalImages;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.finals = new FinalImages(join(dir, 'finals'));
    // What a crash in the middle of a capture leaves behind: never an image, only scratch.
    for (const name of readdirSync(dir)) if (name.startsWith('.capture-') || name.startsWith('.snapshot-')) rmSync(join(dir, name), { recursive: true, force: true });
  }

  private metaPath(root: string): string {
    return join(this.dir, `${root}.manifest.json`);
  }

  private pastPath(root: string): string {
    return join(this.dir, 'past', `${root}.manifest.json`);
  }

  /**
   * A manifest this site captured, even if its image has been released since: the base a target
   * may name for a manifest delta (it holds that manifest from an earlier round or sync). The
   * PAST_MANIFESTS most recently released are kept; only the manifest, not the image.
   */
  manifestOf(root: string): Manifest | undefined {
    const e = this.get(root);
    if (e) return e.manifest;
    const past = this.pastPath(root);
    if (!existsSync(past)) return undefined;
    try {
      const { manifest } = JSON.parse(readFileSync(past, 'utf8')) as { manifest: unknown };
      const m = verifyManifest(manifest);
      return m.rootHash === root ? m : undefined;
    } catch {
      return undefined;
    }
  }

  /** Archives + chunks a directory volume (or chunks a file in place) and records the image. */
  async capture(volumeId: string, volumePath: string, params: ChunkerParams, opts: { inPlace?: boolean } = {}): Promise<ImageResult> {
    const t0 = performance.now();
    const isDir = statSync(volumePath).isDirectory();
    let manifest: Manifest;
    let imagePath: string;
    if (!isDir && opts.inPlace) {
      // The whole file is there: chunked and hashed on every core (same chunks as the serial chunker).
      manifest = await buildManifestFromFileParallel(volumePath, { volumeId, params });
      imagePath = volumePath;
    } else if (isDir) {
      try {
        ({ manifest, imagePath } = await this.archive(volumeId, volumePath, params));
      } catch (err) {
        if (!changedWhileRead(err)) throw err;
        // A pre-copy round of a volume that is being written: archive a point-in-time copy of
        // it instead (a reflink where the filesystem has them). Rounds are fuzzy by design; the
        // final round runs frozen, where nothing changes.
        const snap = join(this.dir, `.snapshot-${process.pid}-${Date.now()}`);
        try {
          // Asynchronous, so the agent keeps serving chunks and heartbeats while a big volume is
          // copied; links stay as they are; sockets and FIFOs (which tar would not archive as data) are skipped.
          await cp(volumePath, snap, {
            recursive: true,
            mode: fsConstants.COPYFILE_FICLONE,
            verbatimSymlinks: true,
            filter: async (src) => {
              const st = await lstat(src);
              return st.isFile() || st.isDirectory() || st.isSymbolicLink();
            },
          });
          ({ manifest, imagePath } = await this.archive(volumeId, snap, params));
        } finally {
          await rm(snap, { recursive: true, force: true });
        }
      }
    } else {
      ({ manifest, imagePath } = await this.archive(volumeId, volumePath, params));
    }
    writeFileSync(this.metaPath(manifest.rootHash), JSON.stringify({ imagePath, manifest }));
    this.cache.set(manifest.rootHash, { manifest, imagePath, byHash: index(manifest) });
    return { manifest, scanMs: performance.now() - t0 };
  }

  /** One pass over `path` (a directory is tarred): written to an image file and chunked; a failed pass leaves no file. */
  private async archive(volumeId: string, path: string, params: ChunkerParams): Promise<{ manifest: Manifest; imagePath: string }> {
    const src = statSync(path).isDirectory() ? tarStream(path) : (createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>);
    const tmp = join(this.dir, `.capture-${process.pid}-${Date.now()}-${++this.captures}.img`);
    const fh = await open(tmp, 'w');
    let manifest: Manifest;
    try {
      // One pass: each block goes to the image file and through the chunker, the write (on the
      // thread pool) overlapping the chunking and hashing of the same block (on this thread).
      async function* tee(): AsyncIterable<Uint8Array> {
        let writing: Promise<unknown> | undefined;
        try {
          for await (const block of src) {
            await writing;
            writing = fh.write(block);
            yield block;
          }
          await writing;
        } finally {
          // Left early (the chunker failed): the write in flight settles before the file is closed,
          // and its own error, if any, is not left unhandled.
          await writing?.catch(() => undefined);
        }
      }
      manifest = await buildManifestFromStream(tee(), { volumeId, params });
      // No fsync: the image is a cache of the volume, not the data of record, and every chunk
      // served from it is checked against its hash by the target before it is stored. An image
      // torn by a crash therefore fails the pull (the round is captured again); it cannot corrupt
      // the target. Syncing it cost the cut-over window time in proportion to the volume.
    } catch (err) {
      await fh.close();
      rmSync(tmp, { force: true });
      throw err;
    }
    await fh.close();
    const imagePath = join(this.dir, `${manifest.rootHash}.img`);
    renameSync(tmp, imagePath);
    return { manifest, imagePath };
  }

  get(root: string): Entry | undefined {
    if (!/^[0-9a-f]{64}$/.test(root)) return undefined;
    const hit = this.cache.get(root);
    if (hit) return hit;
    const meta = this.metaPath(root);
    if (!existsSync(meta)) return undefined;
    const { imagePath, manifest } = JSON.parse(readFileSync(meta, 'utf8')) as { imagePath: string; manifest: unknown };
    const m = verifyManifest(manifest);
    const e = { manifest: m, imagePath, byHash: index(m) };
    this.cache.set(root, e);
    return e;
  }

  /** Reads one chunk of an image by its hash (undefined if the manifest has no such chunk). */
  async readChunk(root: string, hash: string): Promise<Buffer | undefined> {
    const e = this.get(root);
    const ref = e?.byHash.get(hash);
    if (!e || !ref) return undefined;
    let fh = this.handles.get(e.imagePath);
    if (!fh) {
      fh = open(e.imagePath, 'r');
      this.handles.set(e.imagePath, fh);
    }
    const buf = Buffer.allocUnsafe(ref.length);
    const { bytesRead } = await (await fh).read(buf, 0, ref.length, ref.offset);
    if (bytesRead !== ref.length) throw new Error(`image ${e.imagePath} is shorter than its manifest (chunk at ${ref.offset})`);
    return buf;
  }

  /**
   * readChunk, synchronously: for the chunk endpoint, which reads thousands of small chunks per
   * transfer. A chunk read from the page cache takes microseconds; as an async read it queues on
   * the thread pool behind the target's fsyncs (same process in tests and benchmarks, same machine
   * often), which measured as most of a pull's time.
   */
  readChunkSync(root: string, hash: string): Buffer | undefined {
    const e = this.get(root);
    const ref = e?.byHash.get(hash);
    if (!e || !ref) return undefined;
    let fd = this.fds.get(e.imagePath);
    if (fd === undefined) {
      fd = openSync(e.imagePath, 'r');
      this.fds.set(e.imagePath, fd);
    }
    const buf = Buffer.allocUnsafe(ref.length);
    let got = 0;
    while (got < ref.length) {
      const n = readSync(fd, buf, got, ref.length - got, ref.offset + got);
      if (n === 0) throw new Error(`image ${e.imagePath} is shorter than its manifest (chunk at ${ref.offset})`);
      got += n;
    }
    return buf;
  }

  /** Forgets an image; removes its file unless it was served in place. */
  async release(root: string): Promise<void> {
    const e = this.get(root);
    if (!e) return;
    const fh = this.handles.get(e.imagePath);
    this.handles.delete(e.imagePath);
    if (fh) await (await fh).close().catch(() => undefined);
    const fd = this.fds.get(e.imagePath);
    this.fds.delete(e.imagePath);
    if (fd !== undefined) closeSync(fd);
    if (e.imagePath.startsWith(this.dir)) rmSync(e.imagePath, { force: true });
    // Keep the manifest (not the image) as a possible delta base for the next round's manifest.
    mkdirSync(join(this.dir, 'past'), { recursive: true });
    try {
      renameSync(this.metaPath(root), this.pastPath(root));
      const past = readdirSync(join(this.dir, 'past'))
        .map((name) => ({ name, mtime: statSync(join(this.dir, 'past', name)).mtimeMs }))
        .sort((a, b) => b.mtime - a.mtime);
      for (const old of past.slice(PAST_MANIFESTS)) rmSync(join(this.dir, 'past', old.name), { force: true });
    } catch {
      rmSync(this.metaPath(root), { force: true });
    }
    this.cache.delete(root);
  }

  async close(): Promise<void> {
    for (const fh of this.handles.values()) await (await fh).close().catch(() => undefined);
    this.handles.clear();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

function index(m: Manifest): Map<string, ChunkRef> {
  const map = new Map<string, ChunkRef>();
  for (const c of m.chunks) if (!map.has(c.hash)) map.set(c.hash, c);
  return map;
}
