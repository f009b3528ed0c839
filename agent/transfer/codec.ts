/**
 * Chunk compression per transfer mode: LZ4 for datacenter links, Zstd with a level (Node's own
 * zlib, ./zstd.ts) for the others.
 *
 * LZ4 payloads are a standard LZ4 block with the uncompressed size prepended (u32 little-endian),
 * the format of lz4_flex's `compress_prepend_size`. They are compressed by the reference C library
 * (the `lz4` package's `encodeBlock`, LZ4 1.9.2) into a reused scratch buffer, and decompressed by
 * lz4_flex (`lz4-napi`). Why two libraries: per 64 KiB chunk, `lz4-napi`'s compressSync ran at
 * 0.4-0.9 GB/s on this machine against 1.4 GB/s for the C compressor writing into scratch
 * (docs/delta-sync.md, delta-micro; on Node 24 under load, 250 against 410 MB/s), while
 * decompression reads bytes from another site, where lz4_flex's memory-safe decoder is the one we
 * want (the bundled C 1.9.2 predates the fix for CVE-2021-3520). The format is the same either way,
 * so agents on either side of this change agree.
 *
 * `lz4` is the project's only module compiled at install (a NAN addon, built against the headers of
 * the Node that installs it), so it is an optional dependency: where it did not build or does not
 * load (no compiler, no headers offline, built for another Node), chunks are compressed by
 * lz4-napi's prebuilt compressSync instead, slower but the same format. LZ4_COMPRESSOR says which.
 *
 * On the wire a chunk is "packed": one codec byte, then the payload. Packing falls back to 'none'
 * when compression would not save a byte (already-compressed data), so a receiver never pays
 * decompression for nothing and never sees a chunk grow.
 */
import { createRequire } from 'node:module';
import { compressSync as lz4FlexCompress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { zstdCompress, zstdDecompress, zstdFrameContentSize } from './zstd';

type Lz4C = Pick<typeof import('lz4'), 'encodeBlock' | 'encodeBound'>;

function loadLz4C(): Lz4C | undefined {
  try {
    return createRequire(__filename)('lz4') as Lz4C;
  } catch {
    return undefined; // not installed, or its addon did not build or was built for another Node
  }
}
// FEDFLOW_LZ4_COMPRESSOR=lz4-napi forces the fallback (tests run it; an operator may too).
const lz4C = process.env.FEDFLOW_LZ4_COMPRESSOR === 'lz4-napi' ? undefined : loadLz4C();

/** Which library compresses LZ4 chunks in this process (decompression is always lz4-napi). */
export const LZ4_COMPRESSOR: 'lz4 (C)' | 'lz4-napi' = lz4C ? 'lz4 (C)' : 'lz4-napi';

/** LZ4_COMPRESSBOUND of lz4.h: the largest block `n` bytes can compress to. */
function lz4Bound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

export const CODECS = { none: 0, lz4: 1, zstd: 2 } as const;
export type CodecName = keyof typeof CODECS;

/** Zstd levels we allow: 1..19. 20-22 ("ultra") need window sizes we do not want on agents. */
export const ZSTD_LEVELS = { min: 1, max: 19, default: 3 } as const;

export type CodecSpec = { codec: 'none' } | { codec: 'lz4' } | { codec: 'zstd'; level: number };

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

export function describeCodec(spec: CodecSpec): string {
  return spec.codec === 'zstd' ? `zstd-${spec.level}` : spec.codec;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function checkSpec(spec: CodecSpec): void {
  if (spec.codec === 'zstd' && (!Number.isInteger(spec.level) || spec.level < ZSTD_LEVELS.min || spec.level > ZSTD_LEVELS.max)) {
    throw new CodecError(`zstd level is ${spec.level}; expected an integer in [${ZSTD_LEVELS.min}, ${ZSTD_LEVELS.max}]`);
  }
  if (!(spec.codec in CODECS)) throw new CodecError(`unknown codec '${(spec as { codec: string }).codec}'; expected one of ${Object.keys(CODECS).join(', ')}`);
}

/** Bytes before an LZ4 block in the scratch buffer: room for the codec byte, then the u32 size. */
const LZ4_HEAD = 5;
/** Scratch for LZ4 output, reused across calls (callers get copies): grown to the largest chunk seen. */
let lz4Scratch = Buffer.allocUnsafeSlow(LZ4_HEAD + lz4Bound(256 * 1024));

/**
 * Compresses `data` into the scratch buffer as [codec byte][u32 LE size][LZ4 block] and returns the
 * scratch's end. Synchronous on purpose: a 64 KiB chunk takes ~50 µs, less than a round trip
 * through the thread pool would cost, and the transfer server packs a batch in one go anyway.
 */
function lz4ToScratch(data: Buffer): number {
  const need = LZ4_HEAD + lz4Bound(data.length);
  if (lz4Scratch.length < need) lz4Scratch = Buffer.allocUnsafeSlow(need);
  const scratch = lz4Scratch;
  scratch[0] = CODECS.lz4;
  if (!lz4C) {
    // lz4_flex writes the u32 size itself: the same format as below, one copy more. Its own
    // bound is looser than LZ4's, so the scratch grows if ever needed rather than fail a chunk.
    const payload = lz4FlexCompress(data);
    if (1 + payload.length > lz4Scratch.length) lz4Scratch = Buffer.allocUnsafeSlow(1 + payload.length);
    lz4Scratch[0] = CODECS.lz4;
    return 1 + payload.copy(lz4Scratch, 1);
  }
  scratch.writeUInt32LE(data.length, 1);
  if (data.length === 0) {
    scratch[LZ4_HEAD] = 0; // the empty block: one token with no literals, as lz4_flex writes it
    return LZ4_HEAD + 1;
  }
  const n = lz4C.encodeBlock(data, scratch, LZ4_HEAD);
  // 0 means the block did not fit, which encodeBound rules out; checked all the same.
  if (n <= 0) throw new CodecError(`lz4 could not compress a chunk of ${data.length} bytes into ${scratch.length - LZ4_HEAD} (result ${n})`);
  return LZ4_HEAD + n;
}

/** Compresses with exactly the given codec (no fallback). */
export function compressChunk(data: Uint8Array, spec: CodecSpec): Buffer {
  checkSpec(spec);
  switch (spec.codec) {
    case 'none':
      return asBuffer(data);
    case 'lz4': {
      const end = lz4ToScratch(asBuffer(data));
      return Buffer.from(lz4Scratch.subarray(1, end));
    }
    case 'zstd':
      return zstdCompress(data, spec.level);
  }
}

/**
 * Inverse of compressChunk. `expectedLength` (from the manifest) is checked, so a corrupt or
 * hostile payload cannot pass for the chunk or make us keep more than one chunk's bytes.
 */
export function decompressChunk(payload: Uint8Array, codec: CodecName, expectedLength: number): Buffer {
  let out: Buffer;
  try {
    if (codec === 'none') out = asBuffer(payload);
    else if (codec === 'lz4') {
      // lz4_flex prepends the uncompressed size (u32 little-endian): refuse before allocating.
      const claimed = payload.length >= 4 ? asBuffer(payload).readUInt32LE(0) : -1;
      if (claimed !== expectedLength) throw new CodecError(`lz4 payload claims ${claimed} bytes; the manifest says ${expectedLength}`);
      out = lz4Uncompress(payload);
    } else if (codec === 'zstd') {
      // Our frames record their content size: refuse a mismatch before allocating.
      const claimed = zstdFrameContentSize(payload);
      if (claimed !== expectedLength) throw new CodecError(`zstd frame claims ${claimed ?? 'an unknown number of'} bytes; the manifest says ${expectedLength}`);
      out = zstdDecompress(payload, expectedLength);
    }
    else throw new CodecError(`unknown codec '${String(codec)}'; expected one of ${Object.keys(CODECS).join(', ')}`);
  } catch (err) {
    if (err instanceof CodecError) throw err;
    throw new CodecError(`${codec} payload of ${payload.length} bytes does not decompress: ${(err as Error).message}`);
  }
  if (out.length !== expectedLength) throw new CodecError(`${codec} payload decompressed to ${out.length} bytes; the manifest says ${expectedLength}`);
  return out;
}

const CODEC_BY_ID: Record<number, CodecName> = Object.fromEntries(Object.entries(CODECS).map(([k, v]) => [v, k as CodecName]));

function withCodecByte(codec: CodecName, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + payload.length);
  out[0] = CODECS[codec];
  payload.copy(out, 1);
  return out;
}

/** One codec byte + payload; stores raw when compression does not make it smaller. */
export function packChunk(data: Uint8Array, spec: CodecSpec): Buffer {
  if (spec.codec === 'lz4') {
    // Straight from the scratch buffer, which already holds the codec byte: one copy, no
    // intermediate Buffer.
    const end = lz4ToScratch(asBuffer(data));
    return end - 1 < data.length ? Buffer.from(lz4Scratch.subarray(0, end)) : withCodecByte('none', asBuffer(data));
  }
  const body = compressChunk(data, spec);
  return spec.codec !== 'none' && body.length < data.length ? withCodecByte(spec.codec, body) : withCodecByte('none', asBuffer(data));
}

export function unpackChunk(packed: Uint8Array, expectedLength: number): Buffer {
  if (packed.length < 1) throw new CodecError('packed chunk is empty; expected a codec byte and a payload');
  const codec = CODEC_BY_ID[packed[0]!];
  if (codec === undefined) throw new CodecError(`packed chunk has codec byte ${packed[0]}; expected one of ${Object.values(CODECS).join(', ')}`);
  return decompressChunk(packed.subarray(1), codec, expectedLength);
}
