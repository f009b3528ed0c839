/**
 * FASTCDC_V1 cut-point finder: gear rolling hash with normalised chunking (Xia et al., FastCDC,
 * USENIX ATC 2016) and two bytes rolled per step (FastCDC 2020, IEEE TPDS). Pure: no I/O, no Node
 * imports; safe in deterministic workflow code. The only allocation is one typed-array view per
 * call (see nextCut).
 *
 * The rule, which defines the published cut points of this version:
 *   h_i = (2 * h_{i-1} + GEAR[byte_i]) mod 2^32, with h = 0 at byte start + minSize - 31.
 *   For the chunk beginning at `start`, the first position i >= start + minSize - 1 with
 *     h_i & maskS == 0 while i < start + avgSize, or h_i & maskL == 0 after it,
 *   ends the chunk after byte i (length i + 1 - start). No such i before start + maxSize: the
 *   chunk is maxSize long. Fewer than maxSize bytes left: the end of the data may end it.
 *
 * All-zero (or any constant) input: the hash settles on a constant that matches neither mask for
 * the presets (pinned by test), so such input is cut into maxSize chunks, which then dedup to one.
 */
import { GEAR, GEAR_LS } from './gear-table';
import { CompiledParams, ChunkerParams, compileParams, WARMUP_BYTES } from './params';

// Int32 views of the same words: `(int32 + int32) | 0` stays in V8's integer fast path, where a
// Uint32Array element above 2^31 would be a heap number.
const G = new Int32Array(GEAR.buffer, GEAR.byteOffset, 256);
const G_LS = new Int32Array(GEAR_LS.buffer, GEAR_LS.byteOffset, 256);

/** Whether an Int32Array word holds its bytes lowest address first, as the word path assumes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Word indices must stay small integers (V8's fast path) for the word path; beyond, go bytewise. */
const WORD_PATH_MAX_BYTE = 0x7fff_fff0;

/**
 * Where the chunk that begins at `start` ends, as an absolute index in (start, end].
 * `end` is taken to be the end of the data: a streaming caller must pass at least
 * `maxSize` bytes (end - start >= maxSize) unless it is at the end of its input.
 *
 * Reads the bytes four at a time through an Int32Array view of the buffer's ArrayBuffer: one
 * bounds-checked load and three shifts instead of four bounds-checked loads, with eight bytes per
 * loop turn (bench/delta-micro.ts: about 1.4x the bytewise loop on this machine). Each byte still
 * gets its own mask test, so the cut points are those of nextCutBytewise, bit for bit (tested on
 * the golden inputs and at every alignment). Bytes before the first whole word and after the last
 * go one at a time. A big-endian host, or an index past 2^31, takes nextCutBytewise instead.
 */
export function nextCut(buf: Uint8Array, start: number, end: number, p: CompiledParams): number {
  const remaining = end - start;
  if (remaining <= p.minSize) return end;
  const off = buf.byteOffset;
  if (!LITTLE_ENDIAN || off + end > WORD_PATH_MAX_BYTE) return nextCutBytewise(buf, start, end, p);
  const limit = remaining > p.maxSize ? start + p.maxSize : end;
  const center = start + p.avgSize < limit ? start + p.avgSize : limit;
  const g = G;
  const gLs = G_LS;
  // The whole ArrayBuffer from 0, so that word k holds buffer bytes 4k..4k+3 whatever buf's offset;
  // bytes outside buf are never used (only words wholly inside [i, stop) are read).
  const words = new Int32Array(buf.buffer, 0, Math.floor(buf.buffer.byteLength / 4));
  let h = 0;
  let i = start + p.minSize - WARMUP_BYTES;
  const firstCandidate = start + p.minSize - 1;
  // Warm-up: fill the 31-byte window so a candidate depends only on the bytes ending at it.
  for (; i < firstCandidate; i++) h = ((h << 1) + g[buf[i]!]!) | 0;

  // Phase 1 (before avgSize, the harder mask maskS), then phase 2 (up to maxSize, maskL). Two
  // bytes per step as in nextCutBytewise: the first of a pair is checked against the mask shifted
  // by one (see GEAR_LS); a word's bytes 0-1 and 2-3 are two such pairs.
  let m = p.maskS;
  let mLs = p.maskSLs;
  let stop = center;
  for (let phase = 0; phase < 2; phase++) {
    // Bytes up to the next word boundary, one at a time (unshifted mask: h advances one byte).
    while (i < stop && ((off + i) & 3) !== 0) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & m) === 0) return i + 1;
      i++;
    }
    let w = (off + i) >> 2;
    // Two whole words per turn while both lie before `stop`.
    const wEnd = ((off + stop) >> 2) - 1;
    while (w < wEnd) {
      let x = words[w]!;
      h = ((h << 2) + gLs[x & 255]!) | 0;
      if ((h & mLs) === 0) return i + 1;
      h = (h + g[(x >>> 8) & 255]!) | 0;
      if ((h & m) === 0) return i + 2;
      h = ((h << 2) + gLs[(x >>> 16) & 255]!) | 0;
      if ((h & mLs) === 0) return i + 3;
      h = (h + g[x >>> 24]!) | 0;
      if ((h & m) === 0) return i + 4;
      x = words[w + 1]!;
      h = ((h << 2) + gLs[x & 255]!) | 0;
      if ((h & mLs) === 0) return i + 5;
      h = (h + g[(x >>> 8) & 255]!) | 0;
      if ((h & m) === 0) return i + 6;
      h = ((h << 2) + gLs[(x >>> 16) & 255]!) | 0;
      if ((h & mLs) === 0) return i + 7;
      h = (h + g[x >>> 24]!) | 0;
      if ((h & m) === 0) return i + 8;
      i += 8;
      w += 2;
    }
    // The rest of the phase (under 8 bytes), one at a time.
    for (; i < stop; i++) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & m) === 0) return i + 1;
    }
    m = p.maskL;
    mLs = p.maskLLs;
    stop = limit;
  }
  return limit;
}

/**
 * nextCut one byte load at a time (two bytes per step): the portable path, for big-endian hosts
 * and indices past 2^31, and the word path's yardstick in tests.
 */
export function nextCutBytewise(buf: Uint8Array, start: number, end: number, p: CompiledParams): number {
  const remaining = end - start;
  if (remaining <= p.minSize) return end;
  const limit = remaining > p.maxSize ? start + p.maxSize : end;
  const center = start + p.avgSize < limit ? start + p.avgSize : limit;
  const g = G;
  const gLs = G_LS;
  let h = 0;
  let i = start + p.minSize - WARMUP_BYTES;
  const firstCandidate = start + p.minSize - 1;
  // Warm-up: fill the 31-byte window so a candidate depends only on the bytes ending at it.
  for (; i < firstCandidate; i++) h = ((h << 1) + g[buf[i]!]!) | 0;

  // Phase 1, before avgSize: the harder mask. Two bytes per step; the first of the pair is
  // checked against the mask shifted by one (see GEAR_LS).
  let m = p.maskS;
  let mLs = p.maskSLs;
  while (i + 1 < center) {
    h = ((h << 2) + gLs[buf[i]!]!) | 0;
    if ((h & mLs) === 0) return i + 1;
    h = (h + g[buf[i + 1]!]!) | 0;
    if ((h & m) === 0) return i + 2;
    i += 2;
  }
  if (i < center) {
    h = ((h << 1) + g[buf[i]!]!) | 0;
    if ((h & m) === 0) return i + 1;
    i++;
  }

  // Phase 2, from avgSize to maxSize: the easier mask.
  m = p.maskL;
  mLs = p.maskLLs;
  while (i + 1 < limit) {
    h = ((h << 2) + gLs[buf[i]!]!) | 0;
    if ((h & mLs) === 0) return i + 1;
    h = (h + g[buf[i + 1]!]!) | 0;
    if ((h & m) === 0) return i + 2;
    i += 2;
  }
  if (i < limit) {
    h = ((h << 1) + g[buf[i]!]!) | 0;
    if ((h & m) === 0) return i + 1;
  }
  return limit;
}

export interface Cut {
  offset: number;
  length: number;
}

/** All cut points of a buffer held whole (tests, small inputs). Streams use Chunker instead. */
export function cutAll(buf: Uint8Array, params: ChunkerParams): Cut[] {
  const p = compileParams(params);
  const cuts: Cut[] = [];
  let start = 0;
  while (start < buf.length) {
    const end = nextCut(buf, start, buf.length, p);
    cuts.push({ offset: start, length: end - start });
    start = end;
  }
  return cuts;
}
