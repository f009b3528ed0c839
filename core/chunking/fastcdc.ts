/**
 * FASTCDC_V1 cut-point finder: gear rolling hash with normalised chunking (Xia et al., FastCDC,
 * USENIX ATC 2016) and two bytes rolled per step (FastCDC 2020, IEEE TPDS). Pure: no I/O, no Node
 * imports, no allocation; safe in deterministic workflow code.
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
import { compileParams, CompiledParams, ChunkerParams, WARMUP_BYTES } from './params';

// Int32 views of the same words: `(int32 + int32) | 0` stays in V8's integer fast path, where a
// Uint32Array element above 2^31 would be a heap number.
const G = new Int32Array(GEAR.buffer, GEAR.byteOffset, 256);
const G_LS = new Int32Array(GEAR_LS.buffer, GEAR_LS.byteOffset, 256);

/**
 * Where the chunk that begins at `start` ends, as an absolute index in (start, end].
 * `end` is taken to be the end of the data: a streaming caller must pass at least
 * `maxSize` bytes (end - start >= maxSize) unless it is at the end of its input.
 */
export function nextCut(buf: Uint8Array, start: number, end: number, p: CompiledParams): number {
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
