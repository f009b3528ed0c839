/**
 * Chunk compression per transfer mode: LZ4 (lz4-napi, the block format of lz4_flex with the
 * uncompressed size prepended) for datacenter links, Zstd with a level (zstd-napi) for the others.
 *
 * On the wire a chunk is "packed": one codec byte, then the payload. Packing falls back to 'none'
 * when compression would not save a byte (already-compressed data), so a receiver never pays
 * decompression for nothing and never sees a chunk grow.
 */
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { getFrameContentSize as zstdFrameContentSize } from 'zstd-napi/binding';

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

/** Compresses with exactly the given codec (no fallback). */
export function compressChunk(data: Uint8Array, spec: CodecSpec): Buffer {
  checkSpec(spec);
  switch (spec.codec) {
    case 'none':
      return asBuffer(data);
    case 'lz4':
      return lz4Compress(asBuffer(data));
    case 'zstd':
      return zstdCompress(data, { compressionLevel: spec.level });
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
      out = zstdDecompress(payload);
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

/** One codec byte + payload; stores raw when compression does not make it smaller. */
export function packChunk(data: Uint8Array, spec: CodecSpec): Buffer {
  const body = compressChunk(data, spec);
  const codec: CodecName = body.length < data.length ? spec.codec : 'none';
  const payload = codec === 'none' ? asBuffer(data) : body;
  const out = Buffer.allocUnsafe(1 + payload.length);
  out[0] = CODECS[codec];
  payload.copy(out, 1);
  return out;
}

export function unpackChunk(packed: Uint8Array, expectedLength: number): Buffer {
  if (packed.length < 1) throw new CodecError('packed chunk is empty; expected a codec byte and a payload');
  const codec = CODEC_BY_ID[packed[0]!];
  if (codec === undefined) throw new CodecError(`packed chunk has codec byte ${packed[0]}; expected one of ${Object.values(CODECS).join(', ')}`);
  return decompressChunk(packed.subarray(1), codec, expectedLength);
}
