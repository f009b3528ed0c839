/**
 * Picking a codec for a link.
 *
 * A transfer is a pipeline: compression turns raw bytes into wire bytes at `speed` (raw bytes per
 * second, times the cores compressing), and the link carries `bandwidth` wire bytes per second,
 * i.e. `bandwidth × ratio` raw bytes per second. The slower stage sets the pace, so
 *     goodput = min(speed × cores, bandwidth × ratio)      (raw bytes delivered per second)
 * On a slow link the second term binds: a higher level's better ratio is pure gain as long as the
 * compressor keeps ahead. On a fast link the first term binds: a faster codec wins even with a
 * worse ratio, and 'none' wins when nothing keeps up with the wire. Decompression is left out: for
 * LZ4 and Zstd it is several times faster than compression, so it is never the slower stage.
 */
import { performance } from 'node:perf_hooks';
import { CodecSpec, compressChunk, describeCodec } from './codec';

const MBIT = 1_000_000 / 8;

export interface CodecMeasurement {
  spec: CodecSpec;
  name: string;
  /** Raw bytes compressed per second on one core (Infinity for 'none'). */
  speed: number;
  /** Raw bytes / compressed bytes over the samples (>= 1 in practice; 1 for 'none'). */
  ratio: number;
  /** min(speed × cores, bandwidth × ratio), raw bytes per second. */
  goodput: number;
}

export type Measure = (spec: CodecSpec, samples: readonly Uint8Array[]) => { speed: number; ratio: number };

/** Times one pass of compressChunk over the samples. `now` is injectable for tests. */
export function measureCodec(spec: CodecSpec, samples: readonly Uint8Array[], now: () => number = () => performance.now()): { speed: number; ratio: number } {
  const raw = samples.reduce((n, s) => n + s.length, 0);
  if (raw === 0) throw new RangeError('no sample bytes to measure a codec on; pass a few chunks of the volume');
  if (spec.codec === 'none') return { speed: Number.POSITIVE_INFINITY, ratio: 1 };
  const t0 = now();
  let packed = 0;
  for (const s of samples) packed += compressChunk(s, spec).length;
  const seconds = Math.max((now() - t0) / 1000, 1e-6);
  return { speed: raw / seconds, ratio: raw / Math.max(packed, 1) };
}

export const HYBRID_CANDIDATES: readonly CodecSpec[] = [
  { codec: 'none' },
  { codec: 'lz4' },
  { codec: 'zstd', level: 1 },
  { codec: 'zstd', level: 3 },
  { codec: 'zstd', level: 6 },
  { codec: 'zstd', level: 9 },
  { codec: 'zstd', level: 12 },
];

export interface HybridChoice {
  best: CodecMeasurement;
  /** Every candidate, in the order given, for the decision record. */
  measured: CodecMeasurement[];
}

/**
 * Hybrid mode: measures every candidate on sample chunks of the batch and returns the one with
 * the highest goodput on a link of `bandwidthMbps`. Ties go to the earlier candidate, so list
 * cheaper codecs first (the default list does).
 */
export function chooseHybridCodec(
  samples: readonly Uint8Array[],
  bandwidthMbps: number,
  opts: { candidates?: readonly CodecSpec[]; cores?: number; measure?: Measure } = {},
): HybridChoice {
  if (!(bandwidthMbps > 0)) throw new RangeError(`predicted bandwidth is ${bandwidthMbps} Mbit/s; expected a positive number`);
  const candidates = opts.candidates ?? HYBRID_CANDIDATES;
  if (candidates.length === 0) throw new RangeError('no candidate codecs given; pass at least one, e.g. { codec: "none" }');
  const cores = opts.cores ?? 1;
  const measure = opts.measure ?? ((spec, s) => measureCodec(spec, s));
  const link = bandwidthMbps * MBIT;
  const measured = candidates.map((spec) => {
    const { speed, ratio } = measure(spec, samples);
    return { spec, name: describeCodec(spec), speed, ratio, goodput: Math.min(speed * cores, link * ratio) };
  });
  let best = measured[0]!;
  for (const m of measured) if (m.goodput > best.goodput) best = m;
  return { best, measured };
}
