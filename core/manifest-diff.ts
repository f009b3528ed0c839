/**
 * What a target must receive to hold a manifest's volume: the manifest's chunks minus those it
 * already has (its baseline) minus repeats inside the manifest itself. Pure; the workflow may call
 * it on small manifests, the agent on large ones.
 */
import type { ChunkRef, Manifest } from './manifest';

/** Anything that can answer "does the target hold this chunk?": a Set, a Map, a chunk store. */
export interface ChunkBaseline {
  has(hash: string): boolean;
}

export interface ManifestDelta {
  /** One entry per distinct hash to send, at its first offset in the manifest, in offset order. */
  toSend: ChunkRef[];
  sendChunks: number;
  sendBytes: number;
  /** Chunks (counted per occurrence, repeats included) the target already holds. */
  baselineChunks: number;
  baselineBytes: number;
  /** Repeats, within the manifest, of a chunk it sends: fetched once, copied locally. (A held chunk's repeats count as held.) */
  repeatChunks: number;
  repeatBytes: number;
  totalChunks: number;
  totalBytes: number;
}

export function diffManifest(manifest: Pick<Manifest, 'chunks' | 'totalBytes'>, baseline: ChunkBaseline): ManifestDelta {
  const toSend: ChunkRef[] = [];
  const seen = new Set<string>();
  let sendBytes = 0;
  let baselineChunks = 0;
  let baselineBytes = 0;
  let repeatChunks = 0;
  let repeatBytes = 0;
  for (const c of manifest.chunks) {
    // Held first: a final round's manifest is almost all held chunks, and only those it sends need
    // the set of what was seen (a Set of every hash of a 58 000-chunk manifest made the diff, inside
    // the downtime window, ~1.6 × as long: `npm run bench -- final-round`, its diffMs).
    if (baseline.has(c.hash)) {
      baselineChunks++;
      baselineBytes += c.length;
      continue;
    }
    if (seen.has(c.hash)) {
      repeatChunks++;
      repeatBytes += c.length;
      continue;
    }
    seen.add(c.hash);
    toSend.push(c);
    sendBytes += c.length;
  }
  return {
    toSend,
    sendChunks: toSend.length,
    sendBytes,
    baselineChunks,
    baselineBytes,
    repeatChunks,
    repeatBytes,
    totalChunks: manifest.chunks.length,
    totalBytes: manifest.totalBytes,
  };
}

/** The delta without its chunk list: what a workflow records about a round. */
export type DeltaSummary = Omit<ManifestDelta, 'toSend'>;

export function summarizeDelta(d: ManifestDelta): DeltaSummary {
  const { toSend: _toSend, ...rest } = d;
  return rest;
}
