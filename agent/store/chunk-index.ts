/**
 * The chunk store's memory: which chunks are held and where (pack, offset, length), in recency
 * order; the packs; how many manifests of each retention reference each chunk; the byte totals
 * and the counters. Every part of agent/store/ reads and changes this one object; none of them
 * touches the disk through it. (Why one object: the totals must move together with the index,
 * e.g. pinnedBytes when a pinned chunk is stored or removed, whichever part does it.)
 */
import type { Manifest } from '../../core/manifest';
import type { Retention } from './format';

export interface Pack {
  id: string;
  path: string;
  /** Bytes written and durable (the end of the last committed group). */
  size: number;
  /** Bytes of live chunks in it. */
  live: number;
  /** For synchronous reads, opened on first use. */
  fd?: number;
}

export interface Loc {
  pack: Pack;
  offset: number;
  length: number;
}

interface Refs {
  pinned: number;
  baseline: number;
}

export function newCounters() {
  return {
    hits: 0, misses: 0, puts: 0, duplicatePuts: 0, rejectedPuts: 0, evictedChunks: 0, evictedBytes: 0, corruptChunks: 0, cleanedTempFiles: 0,
    truncatedLogBytes: 0, removedPacks: 0, compactedPacks: 0, migratedChunks: 0,
  };
}

export type Counters = ReturnType<typeof newCounters>;

export class ChunkIndex {
  /** Present chunks and where they are, in least- to most-recently-used order (Map keeps insertion order). */
  readonly chunks = new Map<string, Loc>();
  readonly packs = new Map<string, Pack>();
  private readonly refs = new Map<string, Refs>();
  /** Bytes of the chunks held (what maxBytes bounds), and of those pinned. */
  bytes = 0;
  pinnedBytes = 0;
  readonly counters: Counters = newCounters();
  /** Problems met by open() that did not stop it, e.g. an unreadable manifest file. */
  readonly warnings: string[] = [];

  /** Counts (or uncounts) a manifest's chunks as referenced with retention `r`, keeping pinnedBytes in step. */
  addRefs(m: Manifest, r: Retention, delta: 1 | -1): void {
    const seen = new Set<string>();
    for (const c of m.chunks) {
      const hash = c.hash;
      if (seen.has(hash)) continue;
      seen.add(hash);
      let refs = this.refs.get(hash);
      if (!refs) this.refs.set(hash, (refs = { pinned: 0, baseline: 0 }));
      const wasPinned = refs.pinned > 0;
      refs[r] += delta;
      const isPinned = refs.pinned > 0;
      if (refs.pinned === 0 && refs.baseline === 0) this.refs.delete(hash);
      if (wasPinned !== isPinned) {
        const size = this.chunks.get(hash)?.length;
        if (size !== undefined) this.pinnedBytes += isPinned ? size : -size;
      }
    }
  }

  isPinned(hash: string): boolean {
    return (this.refs.get(hash)?.pinned ?? 0) > 0;
  }

  /** Whether any retained manifest (pinned or baseline) references the chunk. */
  isReferenced(hash: string): boolean {
    return this.refs.has(hash);
  }

  /** Marks a held chunk most recently used. (Recency lives in memory; after a restart, it is the index's order.) */
  touch(hash: string): void {
    const l = this.chunks.get(hash);
    if (l && this.chunks.delete(hash)) this.chunks.set(hash, l);
  }
}
