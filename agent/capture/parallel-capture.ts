/**
 * A file's manifest built on several threads, with exactly the chunks of the serial chunker.
 *
 * The file is split into segments; worker k chunks from the start of segment k (as if a chunk
 * began there) until it passes the segment's end, hashing each chunk (one-shot sha256). Worker 0
 * starts at offset 0, so its cuts are the true ones. A FASTCDC_V1 cut depends only on the bytes
 * after the previous cut, so once the true chain of cuts reaches a position that is also a cut of
 * worker k+1's chain (or its starting point), the two chains are the same from there on: the
 * merge continues the true chain on this thread from the last true cut before segment k+1's
 * chunks, cut by cut, until it lands on one of them (content-defined chunking resynchronises
 * within a chunk or two), then takes worker k+1's chunks and digests from there. If it never lands
 * on one, this thread chunks the rest itself: the result is the serial chunker's in every case
 * (tested against it at many split points), only the speed differs.
 *
 * The workers are started on first use and kept for the process's life (idle, they do not keep
 * it alive). Memory: per worker, one read buffer of READ_BYTES + maxSize and the segment's chunk
 * list (8 bytes of offset and 32 of digest per chunk).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { hash as oneShotHash, createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { compileParams, nextCut, paramsId as toParamsId, type ChunkerParams } from '../../core/chunking';
import { MANIFEST_V1, type ChunkRef, type Manifest } from '../../core/manifest';
import { buildManifestFromFile } from './manifest-builder';

/** Bytes read per pread while chunking a range (1 MiB: a few % faster than 8 or 32 MiB here, the bytes still in cache when hashed). */
const READ_BYTES = 1 << 20;
/** Files smaller than this are chunked on the caller's thread (a worker round trip costs more). */
export const PARALLEL_MIN_BYTES = 64 << 20;

export interface RangeChunks {
  /** Absolute end offset of each chunk, in order; the first chunk begins at the range's start. */
  ends: number[];
  /** 32 bytes of sha256 per chunk. */
  digests: Buffer;
}

/**
 * Chunks `fd` from `start` (taken as a chunk start), hashing each chunk, until `stop(end)` says so
 * after a chunk or the file (of `fileSize` bytes) ends. The cuts are nextCut's, as the streaming
 * Chunker makes them: every call to nextCut sees at least maxSize bytes, or all that is left.
 */
export function chunkRange(fd: number, start: number, fileSize: number, params: ChunkerParams, stop: (end: number) => boolean): RangeChunks {
  const p = compileParams(params);
  const buf = Buffer.allocUnsafe(READ_BYTES + p.maxSize);
  const ends: number[] = [];
  const digests: Buffer[] = [];
  let bufAt = start; // file offset of buf[0]
  let bufLen = 0;
  let pos = start;
  while (pos < fileSize) {
    if (pos + p.maxSize > bufAt + bufLen && bufAt + bufLen < fileSize) {
      // Keep the unchunked tail, fill the rest.
      const keep = bufAt + bufLen - pos;
      buf.copy(buf, 0, pos - bufAt, pos - bufAt + keep);
      bufAt = pos;
      bufLen = keep;
      const want = Math.min(buf.length - bufLen, fileSize - (bufAt + bufLen));
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, bufLen + got, want - got, bufAt + bufLen + got);
        if (n === 0) throw new Error(`file ended at ${bufAt + bufLen + got} while being chunked; it was ${fileSize} bytes when the capture began`);
        got += n;
      }
      bufLen += got;
    }
    const cut = nextCut(buf, pos - bufAt, bufLen, p) + bufAt;
    digests.push(oneShotHash('sha256', buf.subarray(pos - bufAt, cut - bufAt), 'buffer'));
    ends.push(cut);
    pos = cut;
    if (stop(cut)) break;
  }
  return { ends, digests: Buffer.concat(digests) };
}

/** One segment for a capture worker thread (agent/capture/capture-worker.ts). */
export interface CaptureJob {
  id: number;
  path: string;
  start: number;
  segmentEnd: number;
  fileSize: number;
  params: ChunkerParams;
}

/** A worker thread running agent/capture/capture-worker. */
class CaptureWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (r: RangeChunks) => void; reject: (e: Error) => void }>();
  /** Resolves once the worker has loaded its code (it says so first thing). */
  readonly ready: Promise<void>;
  private loaded!: () => void;

  constructor() {
    const file = __filename.replace(/parallel-capture\.(ts|js)$/, 'capture-worker.$1');
    // Under tsx (how the agents run), the worker loads its TypeScript through tsx's require API
    // (a worker's own `--import tsx` did not reliably hook its entry module on Node 20).
    this.worker = file.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).require(${JSON.stringify(file)}, ${JSON.stringify(__filename)});`, { eval: true, execArgv: [] })
      : new Worker(file, { execArgv: [] });
    this.ready = new Promise((resolve) => (this.loaded = resolve));
    this.worker.on('message', (m: { id: number; ready?: true; ends?: Float64Array; digests?: Uint8Array; error?: string }) => {
      if (m.ready) return this.loaded();
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.error !== undefined) p.reject(new Error(`capture worker: ${m.error}`));
      else p.resolve({ ends: Array.from(m.ends!), digests: Buffer.from(m.digests!.buffer, m.digests!.byteOffset, m.digests!.byteLength) });
    });
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', (code) => {
      this.failAll(new Error(`capture worker exited with code ${code}`));
      this.loaded();
    });
    this.worker.unref();
  }

  run(job: CaptureJob): Promise<RangeChunks> {
    const p = new Promise<RangeChunks>((resolve, reject) => this.pending.set(job.id, { resolve, reject }));
    this.worker.ref();
    this.worker.postMessage(job);
    return p;
  }

  private failAll(err: Error): void {
    dead.add(this);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

const pool: CaptureWorker[] = [];
const dead = new Set<CaptureWorker>();
let nextJob = 0;

function workers(n: number): CaptureWorker[] {
  for (let k = pool.length - 1; k >= 0; k--) if (dead.has(pool[k]!)) pool.splice(k, 1);
  while (pool.length < n) pool.push(new CaptureWorker());
  return pool.slice(0, n);
}

/** Threads a capture uses: one per core, at most 4. */
export function captureThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * Starts the capture workers now rather than at the first capture (a worker under tsx takes
 * ~0.1 s to load): for an agent, at start-up. Resolves once they are loaded.
 */
export async function warmCaptureWorkers(threads = captureThreads()): Promise<void> {
  if (threads > 1) await Promise.all(workers(threads).map((w) => w.ready));
}

export interface ParallelOptions {
  /** Segments (one worker each); default captureThreads(). */
  segments?: number;
  /** Below this file size, chunk on this thread; default PARALLEL_MIN_BYTES. */
  minBytes?: number;
}

/**
 * The manifest of the file at `path`, the same as buildManifestFromFile's (same chunks, same
 * root), built by several workers when the file is large enough and there is more than one core.
 */
export async function buildManifestFromFileParallel(path: string, opts: { volumeId: string; params: ChunkerParams }, par: ParallelOptions = {}): Promise<Manifest> {
  const segments = par.segments ?? captureThreads();
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const maxSize = compileParams(opts.params).maxSize;
    // Segments shorter than a few chunks would mostly be resynchronisation.
    const n = Math.min(segments, Math.floor(fileSize / (16 * maxSize)));
    if (n < 2 || fileSize < (par.minBytes ?? PARALLEL_MIN_BYTES)) return await buildManifestFromFile(path, opts);
    const starts = Array.from({ length: n }, (_, k) => Math.floor((fileSize * k) / n));
    const ws = workers(n);
    const parts = await Promise.all(
      starts.map((start, k) => ws[k]!.run({ id: ++nextJob, path, start, segmentEnd: k + 1 < n ? starts[k + 1]! : fileSize, fileSize, params: opts.params })),
    );
    // Merge: the true chain is part 0; join each next part where the chains meet.
    const ends: number[] = [...parts[0]!.ends];
    const digests: Buffer[] = [parts[0]!.digests];
    for (let k = 1; k < n; k++) {
      const part = parts[k]!;
      const startsAt = new Map<number, number>(); // a chunk start of part k -> its index
      startsAt.set(starts[k]!, 0);
      part.ends.forEach((e, i) => startsAt.set(e, i + 1));
      let last = ends[ends.length - 1] ?? 0;
      if (last >= fileSize) break;
      let join = startsAt.get(last);
      if (join === undefined) {
        // Continue the true chain here until it lands on a chunk start of part k.
        const more = chunkRange(fd, last, fileSize, opts.params, (e) => startsAt.has(e));
        ends.push(...more.ends);
        digests.push(more.digests);
        last = ends[ends.length - 1]!;
        join = startsAt.get(last);
      }
      if (join === undefined) break; // the true chain reached the end of the file on this thread
      ends.push(...part.ends.slice(join));
      digests.push(part.digests.subarray(join * 32));
    }
    const all = Buffer.concat(digests);
    if (ends.length * 32 !== all.length || ends[ends.length - 1] !== fileSize) throw new Error(`parallel capture of ${path} did not cover the file (${ends.at(-1)} of ${fileSize} bytes)`);
    const chunks: ChunkRef[] = new Array<ChunkRef>(ends.length);
    const root = createHash('sha256');
    let at = 0;
    for (let i = 0; i < ends.length; i++) {
      const d = all.subarray(i * 32, i * 32 + 32);
      root.update(d);
      chunks[i] = { offset: at, length: ends[i]! - at, hash: d.toString('hex') };
      at = ends[i]!;
    }
    return { version: MANIFEST_V1, volumeId: opts.volumeId, paramsId: toParamsId(opts.params), chunks, totalBytes: fileSize, rootHash: root.digest('hex') };
  } finally {
    closeSync(fd);
  }
}
