/**
 * SHA-256 of a file's chunks on worker threads, so that hashing overlaps the FastCDC cut search
 * (which runs on the caller's thread): a capture then costs about max(cut search, hashing) instead
 * of their sum. The caller hands over byte ranges of a file it has already read or written (the
 * bytes are in the page cache); each worker reads a batch's range with one pread and hashes every
 * chunk in it with the one-shot `crypto.hash` (2-3x faster per chunk than createHash on 8-64 KiB
 * chunks, because it skips the Hash object).
 *
 * The workers are plain JavaScript (evaluated from a string, no loader), shared by every capture of
 * this process, and keep it alive only while they have work.
 * Memory: at most MAX_IN_FLIGHT batches of about BATCH_BYTES per worker.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { hash } = require('node:crypto');
let buf = Buffer.alloc(0);
parentPort.on('message', (job) => {
  try {
    const total = job.lengths.reduce((a, b) => a + b, 0);
    if (buf.length < total) buf = Buffer.allocUnsafe(total);
    const fd = openSync(job.path, 'r');
    try {
      let got = 0;
      while (got < total) {
        const n = readSync(fd, buf, got, total - got, job.start + got);
        if (n === 0) throw new Error('file ' + job.path + ' ended at ' + (job.start + got) + ', before the chunk range ' + job.start + '+' + total);
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const digests = new Uint8Array(32 * job.lengths.length);
    let at = 0;
    job.lengths.forEach((len, k) => {
      digests.set(hash('sha256', buf.subarray(at, at + len), 'buffer'), 32 * k);
      at += len;
    });
    parentPort.postMessage({ id: job.id, digests }, [digests.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: String(err && err.message || err) });
  }
});
`;

/** Raw bytes per job sent to a worker. */
export const BATCH_BYTES = 8 << 20;
/** Jobs in flight per worker before the caller waits. */
const MAX_IN_FLIGHT = 3;

interface Pending {
  resolve: (d: Uint8Array) => void;
  reject: (e: Error) => void;
}

class HashWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  constructor() {
    // execArgv []: the worker is plain JavaScript and needs no TypeScript loader.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    this.worker.on('message', (m: { id: number; digests?: Uint8Array; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.error !== undefined) p.reject(new Error(`chunk hasher: ${m.error}`));
      else p.resolve(m.digests!);
    });
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', (code) => this.failAll(new Error(`chunk hasher worker exited with code ${code}`)));
    // Idle workers never keep the process alive (unref after the listeners: adding a 'message'
    // listener refs the worker again); a worker with jobs pending does (see submit).
    this.worker.unref();
  }
  submit(job: { id: number; path: string; start: number; lengths: number[] }): Promise<Uint8Array> {
    const p = new Promise<Uint8Array>((resolve, reject) => this.pending.set(job.id, { resolve, reject }));
    this.worker.ref();
    this.worker.postMessage(job);
    return p;
  }
  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (pool?.includes(this)) pool = undefined;
  }
}

let pool: HashWorker[] | undefined;
let nextId = 0;

/** Hash workers: one per core beyond the caller's, at least one, at most three. */
function workers(): HashWorker[] {
  pool ??= Array.from({ length: Math.max(1, Math.min(3, availableParallelism() - 1)) }, () => new HashWorker());
  return pool;
}

/**
 * Hashes consecutive chunks of one file, in order. `add` takes the next chunk's length (its offset
 * follows the previous one's end, from `start`); `finish` resolves with every digest (32 bytes
 * each, in order) once all are hashed. `add` returns a promise to await before adding more: it
 * resolves at once unless too many batches are in flight (backpressure).
 */
export class FileChunkHasher {
  private readonly ws = workers();
  private readonly batches: Promise<Uint8Array>[] = [];
  private lengths: number[] = [];
  private batchStart: number;
  private batchBytes = 0;
  private rr = 0;
  private failed: Error | undefined;

  constructor(
    private readonly path: string,
    start = 0,
  ) {
    this.batchStart = start;
  }

  add(length: number): Promise<void> | undefined {
    this.lengths.push(length);
    this.batchBytes += length;
    if (this.batchBytes >= BATCH_BYTES) return this.flush();
    return undefined;
  }

  private flush(): Promise<void> | undefined {
    if (this.lengths.length === 0) return undefined;
    const w = this.ws[this.rr++ % this.ws.length]!;
    const id = nextId++;
    const job = { id, path: this.path, start: this.batchStart, lengths: this.lengths };
    const p = w.submit(job);
    p.catch((err: Error) => (this.failed ??= err));
    this.batches.push(p);
    this.batchStart += this.batchBytes;
    this.lengths = [];
    this.batchBytes = 0;
    const inFlight = this.ws.length * MAX_IN_FLIGHT;
    if (this.batches.length > inFlight) {
      // Wait for an older batch to land before reading more of the file.
      return this.batches[this.batches.length - 1 - inFlight]!.then(() => undefined);
    }
    return undefined;
  }

  async finish(): Promise<Uint8Array[]> {
    this.flush();
    const all = await Promise.all(this.batches);
    if (this.failed) throw this.failed;
    const out: Uint8Array[] = [];
    for (const d of all) for (let k = 0; k < d.length; k += 32) out.push(d.subarray(k, k + 32));
    return out;
  }
}
