/**
 * A compact binary form of a manifest, optionally as a delta against a baseline manifest that
 * both sides hold (MANIFEST_DELTA_V1). Pure: Uint8Array only, no Node imports.
 *
 * A manifest is ~110 bytes of JSON per chunk (~46 after zstd). Binary, a new entry is a varint
 * length and the 32-byte digest (~35 bytes); against a baseline, a run of entries the baseline
 * lists in the same order is one COPY op of a few bytes, whatever its length. An insert in the
 * middle of a 512 MiB volume then costs a few KB of manifest instead of a megabyte.
 *
 * Nothing in it is trusted: the decoder bounds every count and range, and the receiver checks the
 * decoded manifest against the root hash it asked for (verifyManifest recomputes the root), so a
 * tampered or mismatched delta cannot pass for the manifest.
 *
 * Layout (varint = unsigned LEB128, at most 2^53 - 1):
 *   "FFMD" u8 version=1 u8 flags (bit 0: has a base)
 *   [32 bytes base root, if flagged] 32 bytes root
 *   varint n + n bytes volumeId (UTF-8), varint n + n bytes paramsId (UTF-8)
 *   varint chunkCount, varint totalBytes
 *   ops, until chunkCount entries are produced:
 *     0x00 COPY  varint baseIndex, varint count       entries baseIndex.. of the base, in order
 *     0x01 NEW   varint count, count x (varint length, 32-byte sha256)
 */
import type { ChunkRef, Manifest } from './manifest';
import { MANIFEST_V1 } from './manifest';

export const MANIFEST_DELTA_V1 = 1 as const;
const MAGIC = [0x46, 0x46, 0x4d, 0x44]; // "FFMD"
const OP_COPY = 0x00;
const OP_NEW = 0x01;
/** Upper bounds a decoder enforces before allocating (a 16 TiB volume in 4 KiB chunks fits). */
export const MANIFEST_DELTA_LIMITS = { maxChunks: 2 ** 32, maxStringBytes: 1024 } as const;

export class ManifestDeltaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestDeltaError';
  }
}

/** Char code -> hex digit value; 0xff for anything else. */
const NIBBLE = new Uint8Array(128).fill(0xff);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) NIBBLE[97 + i] = NIBBLE[65 + i] = 10 + i;

class Writer {
  private buf = new Uint8Array(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new ManifestDeltaError(`varint ${v} is not a non-negative safe integer`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  hex32(h: string): void {
    if (h.length !== 64) throw new ManifestDeltaError(`'${h}' is not 64 hex digits`);
    this.ensure(32);
    // A nibble table over char codes: parseInt per byte was most of a full encoding's time.
    for (let i = 0; i < 64; i += 2) {
      const hi = NIBBLE[h.charCodeAt(i)] ?? 0xff;
      const lo = NIBBLE[h.charCodeAt(i + 1)] ?? 0xff;
      if ((hi | lo) > 0xf) throw new ManifestDeltaError(`'${h}' is not 64 hex digits`);
      this.buf[this.len++] = (hi << 4) | lo;
    }
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.varint(b.length);
    this.bytes(b);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** ASCII codes of the hex digits 0-9a-f. */
const HEX_DIGIT = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const ASCII = new TextDecoder('utf-8');

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new ManifestDeltaError(`manifest delta ends inside ${what} (at byte ${this.pos} of ${this.buf.length})`);
  }
  byte(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  varint(what: string): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.byte(what);
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
      scale *= 0x80;
      if (i >= 7) throw new ManifestDeltaError(`${what} is a varint longer than 8 bytes`);
    }
    if (!Number.isSafeInteger(v)) throw new ManifestDeltaError(`${what} is ${v}, above 2^53`);
    return v;
  }
  hex32(what: string): string {
    const out = new Uint8Array(64);
    this.hex32Into(out, 0, what);
    return ASCII.decode(out);
  }
  /** 32 bytes spelled as 64 lower-case hex digits (ASCII) into `out` at `at`. */
  hex32Into(out: Uint8Array, at: number, what: string): void {
    this.need(32, what);
    for (let i = 0; i < 32; i++) {
      const b = this.buf[this.pos++]!;
      out[at + 2 * i] = HEX_DIGIT[b >> 4]!;
      out[at + 2 * i + 1] = HEX_DIGIT[b & 0xf]!;
    }
  }
  string(what: string): string {
    const n = this.varint(`${what} length`);
    if (n > MANIFEST_DELTA_LIMITS.maxStringBytes) throw new ManifestDeltaError(`${what} is ${n} bytes; at most ${MANIFEST_DELTA_LIMITS.maxStringBytes} allowed`);
    this.need(n, what);
    const s = new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  get atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}

export interface EncodedManifestInfo {
  /** The base the encoding refers to, if any. */
  baseRoot?: string;
  copyOps: number;
  copiedChunks: number;
  newChunks: number;
}

/** Each hash of `chunks` to the index of its first entry: where a COPY op of encodeManifest starts. */
export function firstIndexOf(chunks: readonly ChunkRef[]): Map<string, number> {
  const firstAt = new Map<string, number>();
  for (let i = 0; i < chunks.length; i++) if (!firstAt.has(chunks[i]!.hash)) firstAt.set(chunks[i]!.hash, i);
  return firstAt;
}

/**
 * Encodes `m`, against `base` when given: every run of m's entries that `base` lists consecutively
 * (same hash, so same length) becomes one COPY op; the rest are NEW entries. `baseIndex`, when the
 * caller keeps one (firstIndexOf(base.chunks): the source's image cache does, for reading chunks),
 * spares building it here, one map entry per base chunk. An index entry that does not name an
 * entry of `base` with that hash is not used (that chunk goes as NEW): a stale index costs bytes,
 * never a wrong manifest.
 */
export function encodeManifest(m: Manifest, base?: Pick<Manifest, 'rootHash' | 'chunks'>, baseIndex?: ReadonlyMap<string, number>): { bytes: Uint8Array; info: EncodedManifestInfo } {
  const w = new Writer();
  MAGIC.forEach((b) => w.byte(b));
  w.byte(MANIFEST_DELTA_V1);
  w.byte(base ? 1 : 0);
  if (base) w.hex32(base.rootHash);
  w.hex32(m.rootHash);
  w.string(m.volumeId);
  w.string(m.paramsId);
  w.varint(m.chunks.length);
  w.varint(m.totalBytes);
  const info: EncodedManifestInfo = { ...(base ? { baseRoot: base.rootHash } : {}), copyOps: 0, copiedChunks: 0, newChunks: 0 };
  const firstAt: ReadonlyMap<string, number> = base ? (baseIndex ?? firstIndexOf(base.chunks)) : new Map();
  /** Where in `base` an entry with this hash is, or undefined. */
  const inBase = (hash: string): number | undefined => {
    const i = firstAt.get(hash);
    return i !== undefined && base!.chunks[i]?.hash === hash ? i : undefined;
  };
  const chunks = m.chunks;
  for (let k = 0; k < chunks.length; ) {
    const start = base ? inBase(chunks[k]!.hash) : undefined;
    if (start !== undefined && base) {
      let n = 1;
      while (k + n < chunks.length && start + n < base.chunks.length && base.chunks[start + n]!.hash === chunks[k + n]!.hash) n++;
      w.byte(OP_COPY);
      w.varint(start);
      w.varint(n);
      info.copyOps++;
      info.copiedChunks += n;
      k += n;
      continue;
    }
    let n = 1;
    while (k + n < chunks.length && (!base || inBase(chunks[k + n]!.hash) === undefined)) n++;
    w.byte(OP_NEW);
    w.varint(n);
    for (let j = k; j < k + n; j++) {
      w.varint(chunks[j]!.length);
      w.hex32(chunks[j]!.hash);
    }
    info.newChunks += n;
    k += n;
  }
  return { bytes: w.done(), info };
}

/** The roots a binary manifest names, read from its header without decoding the rest. */
export function readManifestHeader(bytes: Uint8Array): { baseRoot?: string; rootHash: string } {
  const r = new Reader(bytes);
  for (const b of MAGIC) if (r.byte('magic') !== b) throw new ManifestDeltaError('not a fedflow binary manifest (magic is not "FFMD")');
  const version = r.byte('version');
  if (version !== MANIFEST_DELTA_V1) throw new ManifestDeltaError(`binary manifest version is ${version}; expected ${MANIFEST_DELTA_V1}`);
  const flags = r.byte('flags');
  if (flags & ~1) throw new ManifestDeltaError(`binary manifest flags are ${flags}; only bit 0 is defined`);
  const baseRoot = flags & 1 ? r.hex32('base root') : undefined;
  return { ...(baseRoot ? { baseRoot } : {}), rootHash: r.hex32('root') };
}

/**
 * Decodes a binary manifest; `base` must be the manifest its header names (when it names one).
 * Checks structure and bounds only: the caller verifies the result against the root it wanted
 * (verifyManifest in agent/capture/manifest-builder.ts recomputes the root from the entries).
 */
export function decodeManifest(bytes: Uint8Array, base?: Pick<Manifest, 'rootHash' | 'chunks'>): Manifest {
  return decode(bytes, base, undefined).manifest;
}

/**
 * decodeManifest, plus the entries' raw 32-byte digests in order (32 x chunk count bytes): what
 * the root hash is computed over, so that the receiver checks the root without spelling the
 * entries' hex again (agent/capture/manifest-builder.ts verifyDecodedManifest). A NEW entry's
 * digest is its bytes in `bytes`; a COPY entry's comes from `baseDigests`, the base's own digests
 * in its order, which a delta needs.
 */
export function decodeManifestWithDigests(bytes: Uint8Array, base?: Pick<Manifest, 'rootHash' | 'chunks'>, baseDigests?: Uint8Array): { manifest: Manifest; digests: Uint8Array } {
  if (base && baseDigests?.length !== 32 * base.chunks.length) {
    throw new ManifestDeltaError(`the base's digests are ${baseDigests?.length ?? 'not given'}${baseDigests ? ' bytes' : ''}; its ${base.chunks.length} entries need ${32 * base.chunks.length} bytes`);
  }
  const out = decode(bytes, base, { baseDigests: baseDigests ?? new Uint8Array(0) });
  return { manifest: out.manifest, digests: out.digests! };
}

function decode(bytes: Uint8Array, base: Pick<Manifest, 'rootHash' | 'chunks'> | undefined, want: { baseDigests: Uint8Array } | undefined): { manifest: Manifest; digests?: Uint8Array } {
  const head = readManifestHeader(bytes);
  const r = new Reader(bytes);
  r.pos = 4 + 2 + (head.baseRoot ? 32 : 0) + 32;
  if (head.baseRoot !== undefined && base?.rootHash !== head.baseRoot) {
    throw new ManifestDeltaError(`binary manifest is a delta against ${head.baseRoot}; ${base ? `the base given is ${base.rootHash}` : 'no base was given'}`);
  }
  const volumeId = r.string('volumeId');
  const paramsId = r.string('paramsId');
  const count = r.varint('chunk count');
  if (count > MANIFEST_DELTA_LIMITS.maxChunks) throw new ManifestDeltaError(`binary manifest claims ${count} chunks; at most ${MANIFEST_DELTA_LIMITS.maxChunks} allowed`);
  const totalBytes = r.varint('totalBytes');
  const chunks: ChunkRef[] = [];
  // Allocated as entries arrive, never from the claimed count alone (a hostile count is bounded by
  // the body's length only once its entries have been read).
  let digests = want ? new Uint8Array(Math.min(count, 1 << 16) * 32) : undefined;
  const room = (n: number): Uint8Array => {
    const need = 32 * (chunks.length + n);
    if (digests!.length < need) {
      const grown = new Uint8Array(Math.min(32 * count, Math.max(need, 2 * digests!.length)));
      grown.set(digests!);
      digests = grown;
    }
    return digests!;
  };
  let offset = 0;
  while (chunks.length < count) {
    const op = r.byte('op');
    if (op === OP_COPY) {
      if (!base || head.baseRoot === undefined) throw new ManifestDeltaError(`COPY op at byte ${r.pos - 1} in a manifest without a base`);
      const from = r.varint('COPY index');
      const n = r.varint('COPY count');
      if (n === 0 || from + n > base.chunks.length || chunks.length + n > count) {
        throw new ManifestDeltaError(`COPY of ${n} entries from ${from} is out of range (base has ${base.chunks.length}, ${count - chunks.length} entries left)`);
      }
      if (want) room(n).set(want.baseDigests.subarray(32 * from, 32 * (from + n)), 32 * chunks.length);
      for (let j = from; j < from + n; j++) {
        const c = base.chunks[j]!;
        chunks.push({ offset, length: c.length, hash: c.hash });
        offset += c.length;
      }
    } else if (op === OP_NEW) {
      const n = r.varint('NEW count');
      if (n === 0 || chunks.length + n > count) throw new ManifestDeltaError(`NEW of ${n} entries with ${count - chunks.length} entries left`);
      // The run's digests are spelled in hex into one buffer and decoded to one string, each hash
      // a slice of it: a string built two digits at a time is a rope of 32 pieces, and tens of
      // thousands of them cost more in garbage collection than the decoding itself.
      const hex = new Uint8Array(64 * n);
      const lengths = new Array<number>(n);
      for (let j = 0; j < n; j++) {
        const length = r.varint('chunk length');
        if (length === 0) throw new ManifestDeltaError(`chunk ${chunks.length + j} has length 0`);
        lengths[j] = length;
        if (want) room(j + 1).set(bytes.subarray(r.pos, r.pos + 32), 32 * (chunks.length + j));
        r.hex32Into(hex, 64 * j, 'chunk hash');
      }
      const all = ASCII.decode(hex);
      for (let j = 0; j < n; j++) {
        chunks.push({ offset, length: lengths[j]!, hash: all.slice(64 * j, 64 * j + 64) });
        offset += lengths[j]!;
      }
    } else throw new ManifestDeltaError(`unknown op 0x${op.toString(16)} at byte ${r.pos - 1}`);
  }
  if (!r.atEnd) throw new ManifestDeltaError('binary manifest has bytes after its last entry');
  if (offset !== totalBytes) throw new ManifestDeltaError(`binary manifest claims ${totalBytes} bytes; its entries add up to ${offset}`);
  const manifest: Manifest = { version: MANIFEST_V1, volumeId, paramsId, chunks, totalBytes, rootHash: head.rootHash };
  // Grown to 32 x count at most, and the last entry needed exactly that: the digests fill it.
  return { manifest, ...(digests ? { digests } : {}) };
}
