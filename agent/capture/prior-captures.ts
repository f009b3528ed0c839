/**
 * The record of a directory volume's latest capture that the next capture reuses from
 * (./dir-capture.ts PriorCapture), kept at the source agent beside its images:
 * `<images>/reuse/<volumeId>.json`. A cache: held in memory, written after each capture, read
 * back after a restart; when it is missing, torn, or names a file that is gone, the next capture
 * reads the whole volume and writes it again. It says nothing about placement (the federation log
 * does); only which bytes this site has already chunked and where it keeps them.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkRef } from '../../core/manifest';
import type { PriorCapture } from './dir-capture';
import type { ReuseItem } from './reuse-rule';

/** Bumped whenever the image format or this record changes: an older record is not reused. */
export const PRIOR_FORMAT = 1;

interface PriorFile {
  format: number;
  volumeId: string;
  volumePath: string;
  paramsId: string;
  root: string;
  totalBytes: number;
  items: ReuseItem[];
  /** Chunks: offsets (f64), lengths (u32), raw sha256 digests; locations: file index (u16), offset (f64). */
  chunkOffsets: string;
  chunkLengths: string;
  chunkHashes: string;
  files: string[];
  fileOf: string;
  offsetOf: string;
}

function recordPath(dir: string, volumeId: string): string {
  return join(dir, `${encodeURIComponent(volumeId)}.json`);
}

/** The files a record's chunks lie in (what must not be removed while it is kept). */
export function priorFiles(p: PriorCapture): string[] {
  return p.locations.files;
}

const b64 = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

function typed<T>(s: string, size: number, make: (b: ArrayBuffer) => T, count: number, what: string): T {
  const raw = Buffer.from(s, 'base64');
  if (raw.length !== size * count) throw new Error(`${what}: ${raw.length} bytes for ${count} chunks`);
  const out = new ArrayBuffer(raw.length);
  new Uint8Array(out).set(raw);
  return make(out);
}

/** Writes the record (to a temporary name, then renamed: a reader never sees half of one). */
export async function savePrior(dir: string, volumeId: string, p: PriorCapture): Promise<void> {
  const n = p.chunks.length;
  const hashes = Buffer.allocUnsafe(32 * n);
  p.chunks.forEach((c, i) => hashes.write(c.hash, 32 * i, 32, 'hex'));
  const file: PriorFile = {
    format: PRIOR_FORMAT,
    volumeId,
    volumePath: p.volumePath,
    paramsId: p.paramsId,
    root: p.root,
    totalBytes: p.totalBytes,
    items: p.items,
    chunkOffsets: b64(Float64Array.from(p.chunks, (c) => c.offset)),
    chunkLengths: b64(Uint32Array.from(p.chunks, (c) => c.length)),
    chunkHashes: hashes.toString('base64'),
    files: p.locations.files,
    fileOf: b64(p.locations.fileOf),
    offsetOf: b64(p.locations.offsetOf),
  };
  const path = recordPath(dir, volumeId);
  await writeFile(`${path}.tmp`, JSON.stringify(file));
  renameSync(`${path}.tmp`, path);
}

/** The record of `volumeId`, or undefined if there is none usable (then the next capture is a full one). */
export function loadPrior(dir: string, volumeId: string): PriorCapture | undefined {
  const path = recordPath(dir, volumeId);
  if (!existsSync(path)) return undefined;
  try {
    const f = JSON.parse(readFileSync(path, 'utf8')) as PriorFile;
    if (f.format !== PRIOR_FORMAT || f.volumeId !== volumeId) return undefined;
    const n = Buffer.from(f.chunkHashes, 'base64').length / 32;
    const offsets = typed(f.chunkOffsets, 8, (b) => new Float64Array(b), n, 'chunk offsets');
    const lengths = typed(f.chunkLengths, 4, (b) => new Uint32Array(b), n, 'chunk lengths');
    const hashes = Buffer.from(f.chunkHashes, 'base64');
    const chunks: ChunkRef[] = Array.from({ length: n }, (_, i) => ({ offset: offsets[i]!, length: lengths[i]!, hash: hashes.subarray(32 * i, 32 * i + 32).toString('hex') }));
    const fileOf = typed(f.fileOf, 2, (b) => new Uint16Array(b), n, 'chunk files');
    const offsetOf = typed(f.offsetOf, 8, (b) => new Float64Array(b), n, 'chunk file offsets');
    if (f.files.some((file) => !existsSync(file)) || fileOf.some((x) => x >= f.files.length)) return undefined;
    return { volumePath: f.volumePath, paramsId: f.paramsId, root: f.root, totalBytes: f.totalBytes, items: f.items, chunks, locations: { files: f.files, fileOf, offsetOf } };
  } catch {
    return undefined;
  }
}
