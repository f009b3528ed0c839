/**
 * A site's content-addressed chunk store on disk: the facade the rest of fedflow uses. It owns
 * the put path (verification, dedup, the group commit's bookkeeping) and composes the parts of
 * agent/store/, each of which owns one job:
 *
 *   format.ts             the on-disk format, documented there and nowhere else, and its codec
 *   chunk-index.ts        the in-memory index, packs, references, byte totals and counters
 *   read-chunk.ts         reading one chunk for get(), verified
 *   pack-writer.ts        the group-commit writer: packs and the index log
 *   recovery.ts           open: replaying the log, cutting a torn tail, removing dead packs
 *   format1-migration.ts  open: moving a format-1 store into packs
 *   eviction.ts           the maxBytes bound, removals, compaction, scrub and gc
 *   manifests.ts          the manifests and their retention
 *   assemble.ts           writing a manifest's volume to a file (with write-chunks.ts,
 *                         patch-in-place.ts, early-sync.ts and volume-records.ts)
 *
 * One ChunkStore instance per directory: the index and the counters live in memory.
 */
import { hash as oneShotHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { ChunkBaseline } from '../../core/manifest-diff';
import { diffManifest, ManifestDelta } from '../../core/manifest-diff';
import { Manifest, SHA256_HEX } from '../../core/manifest';
import { assemble } from './assemble';
import type { AssemblyContext } from './assembly-context';
import { ChunkIndex, type Loc } from './chunk-index';
import { ChunkHashMismatchError } from './errors';
import { Eviction } from './eviction';
import { migrateFormat1 } from './format1-migration';
import { packsDir, type Retention } from './format';
import { ManifestStore } from './manifests';
import { PackWriter } from './pack-writer';
import { readChunk } from './read-chunk';
import { recoverIndex } from './recovery';
import type { AssembleOptions, ChunkStoreOptions, ChunkStoreStats } from './types';
import { sweepVolumeRecords, volumeState } from './volume-records';

export type { AssembleFigures, AssembleOptions, ChunkStoreOptions, ChunkStoreStats, Retention } from './types';
export { decodeIndexLog } from './format';

function checkHashName(hash: string): void {
  if (!SHA256_HEX.test(hash)) throw new TypeError(`chunk hash '${hash}' is not 64 lower-case hex digits (a sha256)`);
}

export class ChunkStore implements ChunkBaseline {
  private readonly state = new ChunkIndex();
  private readonly writer: PackWriter;
  private readonly eviction: Eviction;
  private readonly manifests: ManifestStore;
  private readonly assembly: AssemblyContext;
  /** Chunks of group commits under way, so that a concurrent put of the same hash waits for them. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  readonly maxBytes: number;
  readonly verifyOnRead: boolean;
  /** Problems met by open() that did not stop it, e.g. an unreadable manifest file. */
  readonly warnings: string[] = this.state.warnings;

  private constructor(
    readonly dir: string,
    opts: ChunkStoreOptions,
  ) {
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    this.verifyOnRead = opts.verifyOnRead ?? true;
    if (!(this.maxBytes > 0)) throw new RangeError(`maxBytes is ${opts.maxBytes}; expected a positive number of bytes`);
    this.writer = new PackWriter(this.state, packsDir(dir));
    this.eviction = new Eviction(this.state, this.writer, this.maxBytes);
    this.manifests = new ManifestStore(dir, this.state);
    this.assembly = { dir, state: this.state, writer: this.writer, manifests: this.manifests, verifyOnRead: this.verifyOnRead, remove: (hash) => this.eviction.removeMany([hash]) };
  }

  /**
   * Opens (creating if needed) the store at `dir`: replays the chunk index (cutting a torn tail),
   * removes what a crash left (temp files, packs no durable record points at), migrates a format-1
   * store, and loads the manifests.
   */
  static async open(dir: string, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const store = new ChunkStore(dir, opts);
    await fs.mkdir(packsDir(dir), { recursive: true });
    await store.manifests.makeDirs();
    await recoverIndex(store.state, store.writer, packsDir(dir));
    await sweepVolumeRecords(dir, store.state);
    await store.manifests.load();
    // Chunk files of a format-1 store, moved into packs (after the manifests, so that pinned
    // chunks are counted as such while they move).
    await migrateFormat1(dir, store.state, (entries) => store.putMany(entries));
    return store;
  }

  /** Closes the store's files. Pending writes finish first (manifests put later too). The instance must not be used after. */
  async close(): Promise<void> {
    await Promise.all([...this.later.keys()].map((root) => this.putLaterNow(root)));
    await this.writer.drain();
    await this.eviction.idle();
    await this.writer.close();
  }

  /** Whether the chunk is held. Synchronous, so a store can be passed to diffManifest as a baseline. */
  has(hash: string): boolean {
    const present = this.state.chunks.has(hash);
    if (present) this.state.counters.hits++;
    else this.state.counters.misses++;
    return present;
  }

  /** The chunks of `manifest` this store lacks. */
  missing(manifest: Manifest): ManifestDelta {
    return diffManifest(manifest, this);
  }

  /**
   * Where a held chunk's bytes are on disk (a pack file, an offset and a length), or undefined.
   * For diagnostics and tests (e.g. to damage a chunk on purpose); the layout is not an interface.
   */
  locateChunk(hash: string): { path: string; offset: number; length: number } | undefined {
    const l = this.state.chunks.get(hash);
    return l && { path: l.pack.path, offset: l.offset, length: l.length };
  }

  /**
   * The chunk's bytes, or undefined when it is not held. Throws ChunkHashMismatchError (after
   * removing the chunk) when the stored bytes no longer match their hash.
   */
  async get(hash: string): Promise<Buffer | undefined> {
    checkHashName(hash);
    return readChunk(this.state, hash, this.verifyOnRead, (h) => this.eviction.removeMany([h]));
  }

  /**
   * Stores a chunk under its sha256. Refuses (ChunkHashMismatchError) bytes that do not hash to
   * `hash`, before anything touches the disk. Returns 'duplicate' when the chunk was already held.
   * Concurrent puts are committed together (one pack append and one log append for all of them).
   */
  async put(hash: string, data: Uint8Array): Promise<'stored' | 'duplicate'> {
    checkHashName(hash);
    const actual = oneShotHash('sha256', data, 'hex');
    if (actual !== hash) {
      this.state.counters.rejectedPuts++;
      throw new ChunkHashMismatchError(hash, actual, 'put');
    }
    const [r] = await this.putMany([{ hash, data }]);
    if (r === 'rejected') throw new Error(`chunk ${hash} was refused by putMany after it verified; this is a bug`);
    return r!;
  }

  /**
   * Stores many chunks with one group commit, for a transfer that receives chunks in batches.
   * Bytes that do not hash to their name are refused before anything touches the disk, and
   * reported as 'rejected' (the others are stored): a transfer refetches those. Returns one result
   * per entry, in order, once the stored ones are durable (their bytes and their index records
   * fdatasynced, in that order).
   */
  async putMany(entries: readonly { hash: string; data: Uint8Array }[]): Promise<('stored' | 'duplicate' | 'rejected')[]> {
    const s = this.state;
    for (const e of entries) checkHashName(e.hash);
    // One-shot sha256 on this thread (~1 GB/s on 8-64 KiB chunks): as WebCrypto on the thread pool,
    // each digest queued behind the group's own fsyncs, which measured slower.
    const digests = entries.map((e) => oneShotHash('sha256', e.data, 'buffer'));
    const results: ('stored' | 'duplicate' | 'rejected')[] = [];
    const fresh: { hash: string; data: Uint8Array; at: number }[] = [];
    const inGroup = new Set<string>();
    const others: Promise<unknown>[] = [];
    entries.forEach((e, i) => {
      if (digests[i]!.toString('hex') !== e.hash) {
        s.counters.rejectedPuts++;
        results.push('rejected');
      } else if (s.chunks.has(e.hash) || inGroup.has(e.hash) || this.inflight.has(e.hash)) {
        s.counters.duplicatePuts++;
        s.touch(e.hash);
        // Held once another commit of the same bytes under way is durable.
        const other = this.inflight.get(e.hash);
        if (other) others.push(other);
        results.push('duplicate');
      } else {
        inGroup.add(e.hash);
        fresh.push({ hash: e.hash, data: e.data, at: i });
        results.push('stored');
      }
    });
    if (fresh.length === 0) {
      await Promise.all(others);
      return results;
    }
    let reserved = 0;
    let commit: Promise<Loc[]> | undefined;
    try {
      for (const f of fresh) {
        await this.eviction.makeRoom(f.data.length);
        reserved += f.data.length;
      }
      commit = this.writer.enqueue(fresh, []);
      for (const f of fresh) this.inflight.set(f.hash, commit);
      const locs = await commit;
      fresh.forEach((f, k) => {
        const loc = locs[k]!;
        loc.pack.live += loc.length;
        s.chunks.set(f.hash, loc);
        s.bytes += loc.length;
        if (s.isPinned(f.hash)) s.pinnedBytes += loc.length;
        s.counters.puts++;
      });
      await Promise.all(others);
      return results;
    } finally {
      if (commit) for (const f of fresh) if (this.inflight.get(f.hash) === commit) this.inflight.delete(f.hash);
      this.eviction.release(reserved);
    }
  }

  /** Removes a chunk; returns whether it was held. A pinned manifest that needs it then lacks it. */
  async delete(hash: string): Promise<boolean> {
    checkHashName(hash);
    const held = this.state.chunks.has(hash);
    await this.eviction.removeMany([hash]);
    return held;
  }

  /** Removes many chunks with one durable log append; returns how many were held. */
  async deleteMany(hashes: readonly string[]): Promise<number> {
    for (const h of hashes) checkHashName(h);
    const held = new Set(hashes.filter((h) => this.state.chunks.has(h))).size;
    await this.eviction.removeMany(hashes);
    return held;
  }

  /** Reclaims the space of removed chunks (see Eviction.compact). */
  compact(): Promise<void> {
    return this.eviction.compact();
  }

  /** Reads and verifies every held chunk; drops (and reports) those that no longer match their hash. */
  scrub(): Promise<{ chunks: number; bytes: number; corrupt: string[] }> {
    return this.eviction.scrub();
  }

  /** Removes every chunk that no retained manifest (pinned or baseline) references, and reclaims their space. */
  gc(): Promise<{ removedChunks: number; removedBytes: number }> {
    return this.eviction.gc();
  }

  /** Stores a manifest under its root hash after verifying it. Its chunks need not be present yet. */
  putManifest(input: Manifest, retention: Retention = 'pinned'): Promise<void> {
    return this.manifests.put(input, retention);
  }

  /**
   * Stores a manifest like putManifest, but `delayMs` from now (or at close()); meanwhile it is
   * held in memory, and getManifest and recentManifestRoots answer with it as if stored. For a
   * write that must not hold the event loop now (checking and serialising a 1 GiB volume's
   * manifest takes ~60 ms): a cut-over's final round. Not durable until then: a crash before it
   * loses it (a later round then extracts whole, or deltas against an older base). A failure of
   * the write goes to `onError`, never thrown.
   */
  putManifestLater(input: Manifest, retention: Retention, delayMs: number, onError: (err: unknown) => void): void {
    if (this.later.has(input.rootHash)) return;
    const timer = setTimeout(() => void this.putLaterNow(input.rootHash), delayMs);
    timer.unref();
    this.later.set(input.rootHash, { manifest: input, retention, timer, onError, holds: 0 });
  }

  /**
   * Holds a manifest put later and not yet written: it is not written while any hold is on (but
   * `maxMs` after this hold at the latest, and at close()), and `releaseDelayMs` after the last
   * hold is released. For a cut-over that goes on after its volume's write (the workload's start
   * and verification, which may take longer than the first delay): its window ends later than
   * the write did. Holds are counted, so an attempt that ends does not arm the write while a
   * retried attempt of the same cut-over still holds it. Returns the release (idempotent); a root
   * with nothing pending gets a no-op.
   */
  holdManifestLater(root: string, releaseDelayMs: number, maxMs: number): () => void {
    const l = this.later.get(root);
    if (!l) return () => undefined;
    l.holds++;
    clearTimeout(l.timer);
    l.timer = setTimeout(() => void this.putLaterNow(root), maxMs);
    l.timer.unref();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Written (or deleted) meanwhile, or put again after that: not this hold's entry.
      if (this.later.get(root) !== l) return;
      l.holds--;
      if (l.holds > 0) return;
      clearTimeout(l.timer);
      l.timer = setTimeout(() => void this.putLaterNow(root), releaseDelayMs);
      l.timer.unref();
    };
  }

  private async putLaterNow(root: string): Promise<void> {
    const l = this.later.get(root);
    if (!l) return;
    clearTimeout(l.timer);
    try {
      await this.manifests.put(l.manifest, l.retention);
    } catch (err) {
      l.onError(err);
    } finally {
      this.later.delete(root);
    }
  }

  private readonly later = new Map<string, { manifest: Manifest; retention: Retention; timer: NodeJS.Timeout; onError: (err: unknown) => void; holds: number }>();

  /** A held manifest (the few most recently used are kept parsed), or one put later not yet written. Shared: treat as read-only. */
  getManifest(rootHash: string): Promise<Manifest | undefined> {
    const l = this.later.get(rootHash);
    if (l) return Promise.resolve(l.manifest);
    return this.manifests.get(rootHash);
  }

  /** Roots of held manifests, most recently put first (those put later first of all): the bases a manifest delta may name. */
  recentManifestRoots(limit = 8): string[] {
    const pending = [...this.later.keys()].reverse();
    return [...pending, ...this.manifests.recentRoots(limit).filter((r) => !this.later.has(r))].slice(0, limit);
  }

  listManifests(): { rootHash: string; retention: Retention }[] {
    return this.manifests.list();
  }

  /** Pins a manifest's chunks against eviction, or releases them to be a baseline only. */
  setRetention(rootHash: string, retention: Retention): Promise<void> {
    return this.manifests.setRetention(rootHash, retention);
  }

  /** Forgets a manifest; its chunks stay until gc() or eviction. */
  deleteManifest(rootHash: string): Promise<boolean> {
    const l = this.later.get(rootHash);
    if (l) {
      clearTimeout(l.timer);
      this.later.delete(rootHash);
    }
    return this.manifests.delete(rootHash);
  }

  /** Writes the volume of a stored manifest to `destPath`, crash-safe (see assemble.ts and AssembleOptions). */
  assemble(rootHash: string, destPath: string, opts: AssembleOptions = {}): Promise<{ bytes: number; chunks: number }> {
    return assemble(this.assembly, rootHash, destPath, opts);
  }

  /** Whether the file at `path` is a whole volume this store wrote (and which), or one left mid-update by a crash. */
  volumeState(path: string): Promise<{ state: 'complete'; rootHash: string } | { state: 'incomplete'; rootHash: string } | { state: 'unknown' }> {
    return volumeState(this.dir, this.manifests, path);
  }

  stats(): ChunkStoreStats {
    const s = this.state;
    let packBytes = 0;
    for (const p of s.packs.values()) packBytes += p.size;
    return { chunks: s.chunks.size, bytes: s.bytes, pinnedBytes: s.pinnedBytes, manifests: this.manifests.size, ...s.counters, packs: s.packs.size, packBytes };
  }
}
