/**
 * Zstandard through Node's own zlib (`zstdCompressSync`, stable in Node 24), which replaced the
 * zstd-napi native build. The frames are standard zstd frames with the content size in their
 * header, byte for byte what zstd-napi wrote at the same level (both are libzstd 1.5.7 one-shot
 * compression; checked on 0 B to 4 MiB at levels 1, 3 and 19), so agents on either side of the
 * switch, and the `zstd` command-line tool, read each other's chunks and manifests.
 */
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/** Little-endian magic number that opens every zstd frame (RFC 8878, section 3.1.1). */
const ZSTD_MAGIC = 0xfd2fb528;

/** One zstd frame of `data` at `level`, its content size recorded in the header. */
export function zstdCompress(data: Uint8Array, level: number): Buffer {
  // One-shot (sync) compression knows the whole input, so libzstd writes Frame_Content_Size:
  // zstdFrameContentSize reads it back, and the receiver checks it before allocating.
  return zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } });
}

/**
 * Decompresses `payload`, never producing more than `maxBytes`: zlib stops with
 * ERR_BUFFER_TOO_LARGE instead, so a frame that lies about its size cannot make us allocate more.
 */
export function zstdDecompress(payload: Uint8Array, maxBytes: number): Buffer {
  return zstdDecompressSync(payload, { maxOutputLength: Math.max(1, maxBytes) });
}

/**
 * The content size a zstd frame's header declares, or null when the frame does not declare one or
 * `payload` does not start with a complete zstd frame header. Reads the header only
 * (RFC 8878, section 3.1.1.1): descriptor, optional window byte, optional dictionary id, then the
 * 0, 1, 2, 4 or 8 byte Frame_Content_Size (the 2-byte form is offset by 256).
 */
export function zstdFrameContentSize(payload: Uint8Array): number | null {
  if (payload.length < 5) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (view.getUint32(0, true) !== ZSTD_MAGIC) return null;
  const descriptor = payload[4]!;
  if (descriptor & 0x08) return null; // the reserved bit must be zero
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const dictIdBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) return null;
  const at = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  if (payload.length < at + fcsBytes) return null;
  switch (fcsBytes) {
    case 1:
      return view.getUint8(at);
    case 2:
      return view.getUint16(at, true) + 256;
    case 4:
      return view.getUint32(at, true);
    default:
      // Past 2^53 a size cannot equal any chunk's or manifest's length anyway.
      return Number(view.getBigUint64(at, true));
  }
}
