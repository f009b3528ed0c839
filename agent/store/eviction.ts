/**
 * The chunk store's space: the maxBytes bound (reserving room for puts, evicting least recently
 * used unpinned chunks), removals (DEL records, durable before they return; format in format.ts),
 * compaction (reclaiming the space removed chunks leave in packs), and scrub.
 */
import { hash as oneShotHash } from 'node:crypto';
import type { ChunkIndex, Pack } from './chunk-index';
import { ChunkStoreFullError } from './errors';
import type { ChunkDel, PackWriter } from './pack-writer';

/** A sealed pack whose live bytes fall below this fraction of its size is compacted. */
const PACK_MIN_LIVE = 0.5;

export class Eviction {
  /** Bytes of puts between makeRoom and their index entry, so concurrent puts respect the bound together. */
  private reservedBytes = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private compacting: Promise<void> | undefined;

  constructor(
    private readonly state: ChunkIndex,
    private readonly writer: PackWriter,
    readonly maxBytes: number,
  ) {}

  /**
   * Reserves `incoming` bytes under maxBytes, first evicting least recently used unpinned chunks.
   * When only other puts' in-flight bytes stand in the way, waits for them to land (they may then
   * be evicted); throws ChunkStoreFullError when pinned chunks alone leave no room.
   */
  async makeRoom(incoming: number): Promise<void> {
    const s = this.state;
    for (;;) {
      // Everything up to the reservation is synchronous, so concurrent puts see each other's.
      const over = s.bytes + this.reservedBytes + incoming - this.maxBytes;
      if (over <= 0) {
        this.reservedBytes += incoming;
        return;
      }
      if (s.bytes - s.pinnedBytes >= over) {
        let freed = 0;
        const victims: string[] = [];
        for (const [hash, loc] of s.chunks) {
          if (freed >= over) break;
          if (s.isPinned(hash)) continue;
          victims.push(hash);
          freed += loc.length;
          s.counters.evictedChunks++;
          s.counters.evictedBytes += loc.length;
        }
        const removing = this.removeMany(victims);
        this.reservedBytes += incoming;
        try {
          await removing;
          await this.compact();
        } catch (err) {
          this.reservedBytes -= incoming;
          throw err;
        }
        return;
      }
      if (this.reservedBytes === 0 || incoming > this.maxBytes - s.pinnedBytes) {
        throw new ChunkStoreFullError(incoming, this.maxBytes, s.pinnedBytes);
      }
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Gives back bytes reserved by makeRoom (their chunks are now in the index, or failed), waking waiting puts. */
  release(bytes: number): void {
    this.reservedBytes -= bytes;
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  /** Drops the chunks from the index at once; resolves once their DEL records are durable. */
  async removeMany(hashes: readonly string[]): Promise<void> {
    const s = this.state;
    const dels: ChunkDel[] = [];
    const emptied: Pack[] = [];
    for (const hash of hashes) {
      const loc = s.chunks.get(hash);
      if (loc === undefined) continue;
      s.chunks.delete(hash);
      s.bytes -= loc.length;
      if (s.isPinned(hash)) s.pinnedBytes -= loc.length;
      loc.pack.live -= loc.length;
      dels.push({ hash, pack: loc.pack.id });
      if (loc.pack.live === 0 && loc.pack !== this.writer.currentPack) emptied.push(loc.pack);
    }
    if (dels.length === 0) return;
    await this.writer.enqueue([], dels);
    await Promise.all([...new Set(emptied)].filter((p) => p.live === 0).map((p) => this.writer.dropPack(p)));
  }

  /**
   * Reclaims the space of removed chunks: each sealed pack whose live bytes are under
   * PACK_MIN_LIVE of its size has its live chunks appended to the current pack (one group
   * commit, like any put) and is then deleted. A crash in between leaves both copies; the later
   * ADD record wins and the old pack is reclaimed again later.
   */
  async compact(): Promise<void> {
    const s = this.state;
    while (this.compacting) await this.compacting;
    this.compacting = (async () => {
      for (const p of [...s.packs.values()]) {
        if (p === this.writer.currentPack || p.live >= p.size * PACK_MIN_LIVE) continue;
        if (p.live === 0) {
          await this.writer.dropPack(p);
          continue;
        }
        const moving = [...s.chunks].filter(([, l]) => l.pack === p);
        const adds = moving.map(([hash, l]) => ({ hash, data: this.writer.readAt(l) }));
        const locs = await this.writer.enqueue(adds, []);
        const undo: ChunkDel[] = [];
        moving.forEach(([hash, old], k) => {
          const now = s.chunks.get(hash);
          const loc = locs[k]!;
          if (now === old) {
            // Same place in the recency order.
            s.chunks.set(hash, loc);
            old.pack.live -= old.length;
            loc.pack.live += loc.length;
          } else undo.push({ hash, pack: loc.pack.id }); // removed meanwhile: the copy is dead too
        });
        if (undo.length) await this.writer.enqueue([], undo);
        if (p.live === 0) await this.writer.dropPack(p);
        s.counters.compactedPacks++;
      }
    })();
    try {
      await this.compacting;
    } finally {
      this.compacting = undefined;
    }
  }

  /** Resolves once a compaction under way has finished. */
  async idle(): Promise<void> {
    await this.compacting;
  }

  /** Reads and verifies every held chunk; drops (and reports) those that no longer match their hash. */
  async scrub(): Promise<{ chunks: number; bytes: number; corrupt: string[] }> {
    const corrupt: string[] = [];
    let bytes = 0;
    const all = [...this.state.chunks];
    for (const [hash, l] of all) {
      const data = this.writer.readAt(l);
      bytes += data.length;
      if (data.length !== l.length || oneShotHash('sha256', data, 'hex') !== hash) corrupt.push(hash);
    }
    this.state.counters.corruptChunks += corrupt.length;
    await this.removeMany(corrupt);
    return { chunks: all.length, bytes, corrupt };
  }

  /** Removes every chunk that no retained manifest (pinned or baseline) references, and reclaims their space. */
  async gc(): Promise<{ removedChunks: number; removedBytes: number }> {
    const victims: string[] = [];
    let removedBytes = 0;
    for (const [hash, loc] of this.state.chunks) {
      if (!this.state.isReferenced(hash)) {
        victims.push(hash);
        removedBytes += loc.length;
      }
    }
    await this.removeMany(victims);
    await this.compact();
    return { removedChunks: victims.length, removedBytes };
  }
}
