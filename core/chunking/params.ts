/**
 * Chunk-size parameters of FASTCDC_V1: their bounds, the preset per transfer mode, and the masks
 * the cut-point finder derives from them. Pure: no Node imports.
 */

/** The algorithm version. Published cut points of a version never change; a new cut rule is a new version. */
export const FASTCDC_V1 = 'fastcdc-v1' as const;
export type ChunkerVersion = typeof FASTCDC_V1;

/**
 * Bounds on the parameters, the same as fastcdc-rs (`src/v2020/mod.rs`), which follow the ranges
 * evaluated in the FastCDC papers. MIN_SIZE_LOWER is also what our warm-up needs: the rolling hash
 * is primed on the WARMUP_BYTES before the first candidate, and those must lie inside the chunk.
 */
export const CHUNK_BOUNDS = {
  MIN_SIZE_LOWER: 64,
  MIN_SIZE_UPPER: 1_048_576,
  AVG_SIZE_LOWER: 256,
  AVG_SIZE_UPPER: 4_194_304,
  MAX_SIZE_LOWER: 1_024,
  MAX_SIZE_UPPER: 16_777_216,
} as const;

/**
 * Normalised chunking level (FastCDC 2016, §3.4, "NC-2"): before the average size the mask has
 * NORMALIZATION more bits than log2(avg) (cuts are harder), after it NORMALIZATION fewer (easier).
 * NC-2 is the level the paper recommends: chunk sizes bunch around avg with little dedup loss.
 */
export const NORMALIZATION = 2 as const;

/**
 * The 32-bit gear hash's bit k depends on the last k+1 bytes only. Masks use the highest bits
 * below bit 31 (bit 31 is shifted out by the two-bytes-at-a-time trick), so the widest window is
 * 31 bytes; hashing starts WARMUP_BYTES before the first candidate so that whether a position is a
 * cut candidate is a function of the 31 bytes ending there, not of where the chunk began.
 */
export const WARMUP_BYTES = 31 as const;

export interface ChunkerParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
}

/**
 * One preset per transfer mode (see DESIGN.md). Larger chunks mean fewer hashes, requests and
 * manifest entries, which a fast trusted link wants; smaller chunks find more duplicates, which a
 * slow link wants because every byte saved is worth more than the per-chunk overhead. min = avg/4
 * and max = avg*4 are the ratios used by the FastCDC papers' evaluation.
 */
export const CHUNKER_PRESETS = {
  datacenter: { minSize: 16_384, avgSize: 65_536, maxSize: 262_144 },
  hybrid: { minSize: 8_192, avgSize: 32_768, maxSize: 131_072 },
  internet: { minSize: 4_096, avgSize: 16_384, maxSize: 65_536 },
} as const satisfies Record<string, ChunkerParams>;
export type ChunkerPreset = keyof typeof CHUNKER_PRESETS;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Every problem with `p`, each naming the value and the allowed range; empty when valid. */
export function checkParams(p: ChunkerParams): string[] {
  const b = CHUNK_BOUNDS;
  const problems: string[] = [];
  const range = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) problems.push(`${name} is ${v}; it must be an integer in [${lo}, ${hi}]`);
  };
  range('minSize', p.minSize, b.MIN_SIZE_LOWER, b.MIN_SIZE_UPPER);
  range('avgSize', p.avgSize, b.AVG_SIZE_LOWER, b.AVG_SIZE_UPPER);
  range('maxSize', p.maxSize, b.MAX_SIZE_LOWER, b.MAX_SIZE_UPPER);
  if (!isPowerOfTwo(p.avgSize)) problems.push(`avgSize is ${p.avgSize}; it must be a power of two (the mask has log2(avgSize) bits)`);
  if (!(p.minSize < p.avgSize && p.avgSize < p.maxSize)) {
    problems.push(`sizes must satisfy minSize < avgSize < maxSize; got ${p.minSize}, ${p.avgSize}, ${p.maxSize}`);
  }
  return problems;
}

export class ChunkerParamsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkerParamsError';
  }
}

/** Mask with `bits` ones at bit positions [31 - bits, 30]. */
export function highMask(bits: number): number {
  return ((1 << bits) - 1) << (31 - bits);
}

/** The parameters checked and expanded into what the hot loop needs. */
export interface CompiledParams extends ChunkerParams {
  /** Mask before avgSize (NORMALIZATION bits harder). */
  readonly maskS: number;
  /** Mask after avgSize (NORMALIZATION bits easier). */
  readonly maskL: number;
  readonly maskSLs: number;
  readonly maskLLs: number;
}

export function compileParams(p: ChunkerParams): CompiledParams {
  const problems = checkParams(p);
  if (problems.length > 0) throw new ChunkerParamsError(`invalid chunker parameters: ${problems.join('; ')}`);
  const bits = Math.round(Math.log2(p.avgSize));
  const maskS = highMask(bits + NORMALIZATION);
  const maskL = highMask(bits - NORMALIZATION);
  return {
    minSize: p.minSize,
    avgSize: p.avgSize,
    maxSize: p.maxSize,
    maskS,
    maskL,
    maskSLs: maskS << 1,
    maskLLs: maskL << 1,
  };
}

/**
 * The id recorded in a manifest: algorithm version and sizes, e.g. `fastcdc-v1:4096:16384:65536`.
 * Two manifests can share chunks only when their ids are equal.
 */
export function paramsId(p: ChunkerParams): string {
  return `${FASTCDC_V1}:${p.minSize}:${p.avgSize}:${p.maxSize}`;
}

/** Inverse of paramsId; throws naming the id and the expected form. */
export function parseParamsId(id: string): ChunkerParams {
  const m = /^fastcdc-v1:(\d+):(\d+):(\d+)$/.exec(id);
  if (!m) throw new ChunkerParamsError(`chunker params id '${id}' is not of the form '${FASTCDC_V1}:<min>:<avg>:<max>'`);
  const p = { minSize: Number(m[1]), avgSize: Number(m[2]), maxSize: Number(m[3]) };
  const problems = checkParams(p);
  if (problems.length > 0) throw new ChunkerParamsError(`chunker params id '${id}': ${problems.join('; ')}`);
  return p;
}
