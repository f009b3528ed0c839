/**
 * The transfer plan a mode implies: codec and level, parallel streams, batch and chunk sizes.
 * Pure. The mode policy (core/mode-policy.ts) refines it from the predicted link; these are the
 * defaults when nothing is predicted yet, and the shape every transfer activity takes.
 */
import { CHUNKER_PRESETS, type ChunkerParams } from './chunking/params';
import type { Mode, TransferPlan as PolicyPlan } from './mode-policy';

/**
 * Chunk sizes a transfer may use: core/chunking's presets (pinned by its golden vectors, so never
 * changed in place) plus sizes added for transfers. Every entry is FASTCDC_V1 with other sizes, so
 * the cut rule is the golden vectors' own; checkParams bounds them like any preset.
 *  - `fine` (2/8/32 KiB): for the internet, where a byte saved is worth a hash and a manifest
 *    entry. A 4 KiB write dirties the chunk around it; measured on the delta benchmark's
 *    `scattered` volume (1% of 4 KiB blocks rewritten), 8 KiB chunks send 0.68x the raw bytes of
 *    16 KiB ones (4.27 against 6.30 MB of 64 MiB), which is what takes fedflow under rsync's -z
 *    bytes there; with manifest deltas the 2x more manifest entries no longer cost wire bytes.
 */
export const TRANSFER_CHUNK_PRESETS = {
  ...CHUNKER_PRESETS,
  fine: { minSize: 2_048, avgSize: 8_192, maxSize: 32_768 },
} as const satisfies Record<string, ChunkerParams>;
export type TransferChunkPreset = keyof typeof TRANSFER_CHUNK_PRESETS;

export interface TransferPlan {
  mode: Mode;
  codec: 'none' | 'lz4' | 'zstd';
  /** zstd level (1..19); absent for other codecs. */
  level?: number;
  streams: number;
  /** Raw bytes per batch request. */
  batchBytes: number;
  chunkPreset: TransferChunkPreset;
}

/**
 * Defaults per mode, from DESIGN.md's table: few big streams on a LAN, many small ones on the
 * internet. Chunk sizes: with manifest deltas a manifest entry no longer costs wire bytes on an
 * unchanged run, so both modes use smaller chunks than their names' presets: datacenter 16 KiB
 * (the `internet` preset's sizes; 64 KiB chunks sent 2.4x the raw bytes on scattered writes),
 * internet 8 KiB (`fine`, see above).
 */
export const DEFAULT_PLANS = {
  datacenter: { mode: 'datacenter', codec: 'lz4', streams: 2, batchBytes: 8 << 20, chunkPreset: 'internet' },
  internet: { mode: 'internet', codec: 'zstd', level: 3, streams: 8, batchBytes: 1 << 20, chunkPreset: 'fine' },
  hybrid: { mode: 'hybrid', codec: 'zstd', level: 1, streams: 4, batchBytes: 4 << 20, chunkPreset: 'hybrid' },
} as const satisfies Record<Mode, TransferPlan>;

export function defaultPlan(mode: Mode): TransferPlan {
  return { ...DEFAULT_PLANS[mode] };
}

/** The policy's chunk size classes, as the modes' default plans size them. */
const PRESET_OF: Record<PolicyPlan['chunkPreset'], TransferChunkPreset> = {
  large: DEFAULT_PLANS.datacenter.chunkPreset,
  medium: DEFAULT_PLANS.hybrid.chunkPreset,
  small: DEFAULT_PLANS.internet.chunkPreset,
};

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
