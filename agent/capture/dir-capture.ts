/**
 * Captures a directory volume: lays its image out (./volume-tar.ts), then chunks it with the
 * FASTCDC_V1 chunker, taking the previous capture's chunks where the bytes are provably the same
 * (./reuse-rule.ts) and reading, chunking and hashing only the rest.
 *
 * Why the chunks are the serial chunker's: a FASTCDC_V1 cut at c after a chunk start p depends only
 * on the bytes [p, c) (the gear hash and the min/normal/max sizes all count from p). So where the
 * new image's chain of cuts reaches a position q that maps (inside a reused span) to a chunk start
 * of the previous image whose chunk lies wholly inside that span, the next cut is the previous
 * one's, shifted; the chunk's bytes and hash are the same. A chunk the previous chunker cut at its
 * image's end (not a content cut) is reused only where the new image ends at the same place. Where
 * nothing maps, the chain continues by reading and chunking until it lands on such a position
 * again (content-defined cuts meet again within a chunk or two). The result is the manifest a
 * full pass would give, chunk for chunk (tested against it).
 *
 * Fresh chunks' bytes go to one new file; a reused chunk's bytes stay where the previous capture
 * keeps them (its location is taken over), so the cut-over writes what changed, not the volume.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { hash as oneShotHash } from 'node:crypto';
import { compileParams, nextCut, paramsId as toParamsId, type ChunkerParams } from '../../core/chunking';
import { MANIFEST_V1, type ChunkRef, type Manifest } from '../../core/manifest';
import { reuseSpans, trustworthy, type ReuseItem, type ReuseSpan } from './reuse-rule';
import { layoutVolume, VolumeTarReader, type KnownHeaders, type TarItem, type VolumeLayout } from './volume-tar';

/** Where each chunk of a capture lies: file index and offset in that file. */
export interface ChunkLocations {
  /** Absolute paths. */
  files: string[];
  fileOf: Uint16Array;
  offsetOf: Float64Array;
}

/** What the next capture of the same volume may take from this one. */
export interface PriorCapture {
  volumePath: string;
  paramsId: string;
  root: string;
  totalBytes: number;
  items: ReuseItem[];
  chunks: readonly ChunkRef[];
  locations: ChunkLocations;
  /**
   * In memory only (a record read back from disk has neither): the chunks' raw sha256 digests in
   * order (32 bytes each), so the next root hash copies them instead of decoding every hex name;
   * and the layout's headers by path, with their hashes, so the next layout encodes only the
   * headers of entries that changed. Both are what the next capture would compute again, the same.
   */
  digests?: Buffer;
  headers?: Map<string, KnownHeader>;
}

type KnownHeader = Pick<TarItem, 'type' | 'mode' | 'size' | 'linkpath' | 'header'> & { hdr: string };

/** Headers are kept for the next capture up to this many entries (~0.6 KB each: ~30 MB at most per volume). */
const KEEP_HEADERS_MAX = 50_000;

export interface DirCaptureFigures {
  filesRead: number;
  filesReused: number;
  bytesRead: number;
  chunksHashed: number;
  chunksReused: number;
}

export interface DirCaptureResult {
  manifest: Manifest;
  locations: ChunkLocations;
  /** Bytes written to `freshPath` (0: the file was not created). */
  freshBytes: number;
  figures: DirCaptureFigures;
  /** This capture, for the next one. */
  next: PriorCapture;
}

/** Bytes read ahead per read while chunking a fresh region. */
const READ_BYTES = 1 << 20;
/** The event loop gets a turn after this many fresh bytes (heartbeats, the chunk endpoint). */
const YIELD_BYTES = 8 << 20;
/** Fresh bytes are written in blocks of this. */
const WRITE_BYTES = 4 << 20;

function hdrHash(header: Buffer): string {
  return oneShotHash('sha256', header, 'hex');
}

/** Index of `x` in the sorted `starts`, or -1. */
function indexOf(starts: Float64Array, x: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = starts[mid]!;
    if (v === x) return mid;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * Captures `dir`. With `prior` (the previous capture of the same volume, same path and chunking),
 * takes its chunks where the rule proves the bytes unchanged. Fresh chunk bytes are written to
 * `freshPath` (created only if there are any).
 */
export async function captureDirectory(dir: string, opts: { volumeId: string; params: ChunkerParams; freshPath: string; prior?: PriorCapture; layout?: VolumeLayout }): Promise<DirCaptureResult> {
  const paramsId = toParamsId(opts.params);
  const prior = opts.prior && opts.prior.paramsId === paramsId && opts.prior.volumePath === dir ? opts.prior : undefined;
  const layout = opts.layout ?? layoutVolume(dir, Date.now, prior?.headers as KnownHeaders | undefined);
  const p = compileParams(opts.params);
  const total = layout.totalBytes;
  // A header taken over from the prior's layout (the same Buffer) has the prior's hash.
  const hdrs = layout.items.map((it) => {
    const known = prior?.headers?.get(it.path);
    return known && known.header === it.header ? known.hdr : hdrHash(it.header);
  });
  const nowItems = layout.items.map((it, i) => ({ path: it.path, type: it.type, off: it.off, len: it.len, hdr: hdrs[i]!, ...(it.stat ? { stat: it.stat } : {}) }));
  const spans: ReuseSpan[] = prior ? reuseSpans(prior.items, prior.totalBytes, nowItems, total) : [];
  const priorStarts = prior ? Float64Array.from(prior.chunks, (c) => c.offset) : new Float64Array(0);

  let si = 0;
  // The chunk reused last, and where it ended in the previous image: the next reuse is almost
  // always the chunk after it, found without a search.
  let lastK = -1;
  let lastEnd = -1;
  /** The previous capture's chunk that starts at new position `pos` and is provably the same, or -1. Positions asked for never go back. */
  const reuseAt = (pos: number): number => {
    while (si < spans.length && spans[si]!.newEnd <= pos) si++;
    const s = spans[si];
    if (!prior || !s || pos < s.newStart) return -1;
    const o = pos - s.newStart + s.oldStart;
    const k = o === lastEnd && priorStarts[lastK + 1] === o ? lastK + 1 : indexOf(priorStarts, o);
    if (k < 0) return -1;
    const len = prior.chunks[k]!.length;
    if (o + len > s.oldStart + (s.newEnd - s.newStart)) return -1;
    // A cut the previous chunker made at its image's end was not a content cut.
    if (o + len >= prior.totalBytes && pos + len !== total) return -1;
    lastK = k;
    lastEnd = o + len;
    return k;
  };
  /** Start of the first span at or after `pos` (Infinity if none): how far a fresh region reads ahead. */
  const nextSpanStart = (pos: number): number => {
    for (let j = si; j < spans.length; j++) if (spans[j]!.newEnd > pos) return Math.max(pos, spans[j]!.newStart);
    return Infinity;
  };

  const reader = new VolumeTarReader(layout);
  const buf = Buffer.allocUnsafe(READ_BYTES + p.maxSize);
  let bufAt = 0;
  let bufLen = 0;
  const chunks: ChunkRef[] = [];
  // Per chunk, in typed arrays grown by doubling: its file and offset there, and its raw digest.
  let cap = Math.max(1024, prior ? prior.chunks.length + (prior.chunks.length >> 3) : 0);
  let fileOf = new Uint32Array(cap);
  let offsetOf = new Float64Array(cap);
  let digests = Buffer.allocUnsafe(32 * cap);
  const room = () => {
    if (chunks.length < cap) return;
    cap *= 2;
    const f = new Uint32Array(cap);
    f.set(fileOf);
    fileOf = f;
    const o = new Float64Array(cap);
    o.set(offsetOf);
    offsetOf = o;
    const d = Buffer.allocUnsafe(32 * cap);
    digests.copy(d);
    digests = d;
  };
  const priorDigests = prior?.digests && prior.digests.length === 32 * prior.chunks.length ? prior.digests : undefined;
  const files: string[] = prior ? [...prior.locations.files] : [];
  // The prior's file indexes are this capture's (its files come first, in order).
  let fd: FileHandle | undefined;
  let freshIdx = -1;
  let freshBytes = 0;
  // Fresh bytes are gathered into blocks and written on the thread pool, one block in flight while
  // the next is chunked: a write held up by the kernel's writeback never holds up the event loop.
  let out = Buffer.allocUnsafe(WRITE_BYTES);
  let outLen = 0;
  let writing: Promise<unknown> | undefined;
  const flush = async () => {
    await writing;
    const block = out.subarray(0, outLen);
    writing = fd!.write(block, 0, block.length);
    out = Buffer.allocUnsafe(WRITE_BYTES);
    outLen = 0;
  };
  let chunksReused = 0;
  let sinceYield = 0;
  let pos = 0;
  try {
    while (pos < total) {
      const k = reuseAt(pos);
      if (k >= 0) {
        // Chunk k, and the prior's chunks after it for as long as each lies wholly inside the same
        // span (reuseAt's conditions, checked here chunk by chunk without a search): one run.
        const pc = prior!.chunks;
        const span = spans[si]!;
        const shift = span.newStart - span.oldStart;
        const spanOldEnd = span.oldStart + (span.newEnd - span.newStart);
        const first = chunks.length;
        let j = k;
        for (;;) {
          const c = pc[j]!;
          room();
          // The prior's own (immutable) ref where the chunk did not move.
          chunks.push(shift === 0 ? c : { offset: c.offset + shift, length: c.length, hash: c.hash });
          pos += c.length;
          const next = pc[j + 1];
          if (!next) break;
          const end = next.offset + next.length;
          if (end > spanOldEnd) break;
          // A cut the previous chunker made at its image's end was not a content cut.
          if (end >= prior!.totalBytes && end + shift !== total) break;
          j++;
        }
        const n = j + 1 - k;
        fileOf.set(prior!.locations.fileOf.subarray(k, j + 1), first);
        offsetOf.set(prior!.locations.offsetOf.subarray(k, j + 1), first);
        if (priorDigests) priorDigests.copy(digests, 32 * first, 32 * k, 32 * (j + 1));
        else for (let x = 0; x < n; x++) digests.write(pc[k + x]!.hash, 32 * (first + x), 32, 'hex');
        chunksReused += n;
        lastK = j;
        lastEnd = pc[j]!.offset + pc[j]!.length;
        continue;
      }
      // Every cut sees at least maxSize bytes after the chunk start, or all that is left (as the streaming chunker).
      const need = Math.min(total, pos + p.maxSize);
      if (pos >= bufAt + bufLen) {
        bufAt = pos;
        bufLen = 0;
      }
      if (bufAt + bufLen < need) {
        const keep = bufAt + bufLen - pos;
        buf.copy(buf, 0, pos - bufAt, pos - bufAt + keep);
        bufAt = pos;
        bufLen = keep;
        // Read ahead up to the next reusable span, not into it: there only what the next cut needs
        // is read, chunk by chunk, until the chain lands on a reusable cut.
        const ahead = Math.max(need, Math.min(nextSpanStart(pos), pos + READ_BYTES, total));
        const want = Math.min(buf.length, ahead - bufAt) - bufLen;
        await reader.read(buf, bufLen, want, bufAt + bufLen);
        bufLen += want;
      }
      const cut = nextCut(buf, pos - bufAt, bufLen, p) + bufAt;
      const bytes = buf.subarray(pos - bufAt, cut - bufAt);
      const digest = oneShotHash('sha256', bytes, 'buffer');
      room();
      const i = chunks.length;
      chunks.push({ offset: pos, length: cut - pos, hash: digest.toString('hex') });
      digest.copy(digests, 32 * i);
      if (fd === undefined) {
        fd = await open(opts.freshPath, 'w');
        freshIdx = files.length;
        files.push(opts.freshPath);
      }
      fileOf[i] = freshIdx;
      offsetOf[i] = freshBytes;
      // A chunk is at most maxSize, far below a block.
      if (outLen + bytes.length > out.length) await flush();
      out.set(bytes, outLen);
      outLen += bytes.length;
      freshBytes += bytes.length;
      pos = cut;
      sinceYield += bytes.length;
      if (sinceYield >= YIELD_BYTES) {
        sinceYield = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    if (fd !== undefined && outLen) await flush();
    await writing;
  } finally {
    await writing?.catch(() => undefined);
    await reader.close();
    await fd?.close();
  }
  // Keep only the files this capture's chunks lie in.
  const n = chunks.length;
  const remap = new Int32Array(files.length).fill(-1);
  for (let i = 0; i < n; i++) remap[fileOf[i]!] = 0;
  const used: number[] = [];
  for (let f = 0; f < files.length; f++) if (remap[f] === 0) remap[f] = used.push(f) - 1;
  if (used.length > 0xffff) throw new Error(`a capture of ${dir} would span ${used.length} files`);
  const fileOfUsed = new Uint16Array(n);
  for (let i = 0; i < n; i++) fileOfUsed[i] = remap[fileOf[i]!]!;
  const locations: ChunkLocations = { files: used.map((f) => files[f]!), fileOf: fileOfUsed, offsetOf: offsetOf.slice(0, n) };
  // The root: sha256 over the digests in order (manifest-builder.ts computeRootHash), here from
  // the raw digests already at hand.
  const ownDigests = Buffer.from(digests.subarray(0, 32 * n));
  const manifest: Manifest = { version: MANIFEST_V1, volumeId: opts.volumeId, paramsId, chunks, totalBytes: total, rootHash: oneShotHash('sha256', ownDigests, 'hex') };
  const items: ReuseItem[] = layout.items.map((it, i) => ({
    path: it.path,
    type: it.type,
    off: it.off,
    len: it.len,
    hdr: hdrs[i]!,
    ...(it.stat ? { stat: it.stat, reusable: trustworthy(it.stat, it.statAtMs!) } : {}),
  }));
  let filesRead = 0;
  let fileItems = 0;
  layout.items.forEach((it, i) => {
    if (it.type !== 'file' || it.size === 0) return;
    fileItems++;
    if (reader.filesTouched.has(i)) filesRead++;
  });
  return {
    manifest,
    locations,
    freshBytes,
    figures: { filesRead, filesReused: fileItems - filesRead, bytesRead: reader.fileBytesRead, chunksHashed: chunks.length - chunksReused, chunksReused },
    next: {
      volumePath: dir,
      paramsId,
      root: manifest.rootHash,
      totalBytes: total,
      items,
      chunks,
      locations,
      digests: ownDigests,
      ...(layout.items.length <= KEEP_HEADERS_MAX
        ? { headers: new Map(layout.items.map((it, i) => [it.path, { type: it.type, mode: it.mode, size: it.size, ...(it.linkpath !== undefined ? { linkpath: it.linkpath } : {}), header: it.header, hdr: hdrs[i]! }])) }
        : {}),
    },
  };
}
