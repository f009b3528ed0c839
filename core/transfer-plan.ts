/**
 * The transfer plan a mode implies: codec and level, parallel streams, batch and chunk sizes.
 * Pure. The mode policy (core/mode-policy.ts) refines it from the predicted link; these are the
 * defaults when nothing is predicted yet, and the shape every transfer activity takes.
 */
import type { ChunkerPreset } from './chunking/params';
import type { Mode, TransferPlan as PolicyPlan } from './mode-policy';

export interface TransferPlan {
  mode: Mode;
  codec: 'none' | 'lz4' | 'zstd';
  /** zstd level (1..19); absent for other codecs. */
  level?: number;
  streams: number;
  /** Raw bytes per batch request. */
  batchBytes: number;
  chunkPreset: ChunkerPreset;
}

/** Defaults per mode, from DESIGN.md's table: few big streams on a LAN, many small ones on the internet. */
export const DEFAULT_PLANS = {
  datacenter: { mode: 'datacenter', codec: 'lz4', streams: 2, batchBytes: 8 << 20, chunkPreset: 'datacenter' },
  internet: { mode: 'internet', codec: 'zstd', level: 3, streams: 8, batchBytes: 1 << 20, chunkPreset: 'internet' },
  hybrid: { mode: 'hybrid', codec: 'zstd', level: 1, streams: 4, batchBytes: 4 << 20, chunkPreset: 'hybrid' },
} as const satisfies Record<Mode, TransferPlan>;

export function defaultPlan(mode: Mode): TransferPlan {
  return { ...DEFAULT_PLANS[mode] };
}

const PRESET_OF: Record<PolicyPlan['chunkPreset'], ChunkerPreset> = { large: 'datacenter', medium: 'hybrid', small: 'internet' };

/** The transfer plan for a mode decision: the policy's codec, level and streams, this mode's batch size. */
export function planFromDecision(mode: Mode, p: PolicyPlan): TransferPlan {
  return {
    mode,
    codec: p.codec,
    ...(p.codec === 'zstd' ? { level: p.level } : {}),
    streams: p.streams,
    batchBytes: DEFAULT_PLANS[mode].batchBytes,
    chunkPreset: PRESET_OF[p.chunkPreset],
  };
}
