/**
 * A site's content-addressed chunk store on disk.
 *
 * Layout under `dir`:
 *   chunks/<first two hex digits>/<sha256 hex>     one file per distinct chunk
 *   manifests/pinned/<root hash>.json              manifests whose chunks are never evicted
 *   manifests/baseline/<root hash>.json            manifests kept as a dedup baseline: evictable
 *   volumes/<sha256 of the path>.json               what assemble() last wrote at a path, and that
 *                                                  file's identity (see AssembledVolume)
 *
 * Every file is written crash-safe: a `.tmp-` file in the same directory, fsync, rename, fsync of
 * the directory. A crash leaves at most a `.tmp-` file, which is never read and is removed by the
 * next open(). Bytes are verified against their hash on put and (by default) on read.
 *
 * One ChunkStore instance per directory: the index and the counters live in memory.
 */
import { createHash, hash as oneShotHash, randomBytes, webcrypto } from 'node:crypto';
import { closeSync, constants as fsConstants, futimesSync, openSync, promises as fs, readSync, statSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import type { ChunkBaseline } from '../core/manifest-diff';
import { diffManifest, ManifestDelta } from '../core/manifest-diff';
import { ChunkRef, Manifest, SHA256_HEX } from '../core/manifest';
import { orderMovesInPlace, planAssembly, type BasisRun } from '../core/manifest-basis';
import { verifyManifest } from './manifest-builder';
import { ChunkHashMismatchError, ChunkStoreFullError, ManifestNotFoundError, MissingChunksError } from './chunk-errors';

export type Retention = 'pinned' | 'baseline';

export interface ChunkStoreOptions {
  /** Bound on the bytes of chunk files. Over it, least recently used unpinned chunks are evicted. */
  maxBytes?: number;
  /** Re-hash chunks when reading them (default true): catches disk corruption before it spreads. */
  verifyOnRead?: boolean;
}

export interface ChunkStoreStats {
  chunks: number;
  bytes: number;
  pinnedBytes: number;
  manifests: number;
  /** Lookups (has and get) that found the chunk, and those that did not. */
  hits: number;
  misses: number;
  puts: number;
  duplicatePuts: number;
  rejectedPuts: number;
  evictedChunks: number;
  evictedBytes: number;
  corruptChunks: number;
  /** Leftover `.tmp-` files removed by open(). */
  cleanedTempFiles: number;
}

export interface AssembleOptions {
  /**
   * An earlier volume file this store assembled (often the destination itself): chunks the new
   * manifest shares with it are copied from it instead of being read from the store. Used only if
   * the store's record of that file (its manifest root, device, inode, size, mtime and ctime, all
   * taken right after this store wrote it) still matches the file, and that manifest is still in
   * the store; otherwise ignored (the whole volume then comes from the store). Bytes copied from
   * the basis are not hashed again: they were verified chunk by chunk when this store wrote the
   * file, and the file has not been written since (its ctime would have moved).
   */
  basisPath?: string;
  /**
   * With basisPath === destPath: update the file in place when only a small part of it changes
   * (see patchInPlace), instead of writing a whole new file and renaming it over the old one.
   */
  inPlace?: boolean;
  /** Receives where the bytes came from and how long each step took. */
  onFigures?: (f: AssembleFigures) => void;
}

export interface AssembleFigures {
  basisUsed: boolean;
  /** The file was updated in place (AssembleOptions.inPlace). */
  inPlace?: boolean;
  /** Why a basis that was asked for was not used. */
  basisRefused?: string;
  /** Bytes taken from a kernel-side copy of the basis file (already at the right offset). */
  inPlaceBytes: number;
  /** Bytes read from the basis at another offset and written. */
  movedBytes: number;
  /** Bytes read from chunk files (and hashed, when verifyOnRead). */
  storeBytes: number;
  copyMs: number;
  writeMs: number;
  syncMs: number;
}

/** What assemble() wrote at a path, with the file's identity right after the write. */
interface AssembledVolume {
  path: string;
  /** 'patching' (and no identity) while an in-place update runs. */
  state?: 'patching';
  rootHash: string;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

function fileIdentity(path: string): Omit<AssembledVolume, 'path' | 'rootHash'> | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
  } catch {
    return undefined;
  }
}

interface Refs {
  pinned: number;
  baseline: number;
}

const TMP_PREFIX = '.tmp-';
/** In-place updates only when at most 1/IN_PLACE_MAX_CHANGED of the volume changes. */
const IN_PLACE_MAX_CHANGED = 4;
/** Bytes of a volume assemble() reads, verifies and writes per step. */
const ASSEMBLE_WINDOW_BYTES = 4 << 20;

async function fsyncDir(path: string): Promise<void> {
  const h = await fs.open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Writes `data` to `path` so that after a crash `path` holds either nothing or all of `data`. */
async function writeFileDurable(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${TMP_PREFIX}${basename(path)}-${randomBytes(6).toString('hex')}`);
  const h = await fs.open(tmp, 'wx');
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (err) {
    await h.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fs.rename(tmp, path);
  await fsyncDir(dir);
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function checkHashName(hash: string): void {
  if (!SHA256_HEX.test(hash)) throw new TypeError(`chunk hash '${hash}' is not 64 lower-case hex digits (a sha256)`);
}

export class ChunkStore implements ChunkBaseline {
  /** Present chunks, in least- to most-recently-used order (Map keeps insertion order). */
  private readonly index = new Map<string, number>();
  private readonly refs = new Map<string, Refs>();
  private readonly manifests = new Map<string, Retention>();
  /** When each manifest was last put (its file's mtime after a restart): recency for delta bases. */
  private readonly manifestAt = new Map<string, number>();
  /** Unlinks under way, so that a put of the same hash waits for them. */
  private readonly unlinking = new Map<string, Promise<void>>();
  private bytes = 0;
  private pinnedBytes = 0;
  /** Bytes of puts between makeRoom and their index entry, so concurrent puts respect the bound together. */
  private reservedBytes = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly counters = { hits: 0, misses: 0, puts: 0, duplicatePuts: 0, rejectedPuts: 0, evictedChunks: 0, evictedBytes: 0, corruptChunks: 0, cleanedTempFiles: 0 };
  readonly maxBytes: number;
  readonly verifyOnRead: boolean;
  /** Problems met by open() that did not stop it, e.g. an unreadable manifest file. */
  readonly warnings: string[] = [];

  private constructor(
    readonly dir: string,
    opts: ChunkStoreOptions,
  ) {
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    this.verifyOnRead = opts.verifyOnRead ?? true;
    if (!(this.maxBytes > 0)) throw new RangeError(`maxBytes is ${opts.maxBytes}; expected a positive number of bytes`);
  }

  /** Opens (creating if needed) the store at `dir`, rebuilds its index and removes leftover temp files. */
  static async open(dir: string, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const store = new ChunkStore(dir, opts);
    await store.load();
    return store;
  }

  private chunkDir(hash: string): string {
    return join(this.dir, 'chunks', hash.slice(0, 2));
  }
  private chunkPath(hash: string): string {
    return join(this.chunkDir(hash), hash);
  }
  private manifestPath(root: string, r: Retention): string {
    return join(this.dir, 'manifests', r, `${root}.json`);
  }

  private async load(): Promise<void> {
    const chunksDir = join(this.dir, 'chunks');
    await fs.mkdir(chunksDir, { recursive: true });
    for (const r of ['pinned', 'baseline'] as const) await fs.mkdir(join(this.dir, 'manifests', r), { recursive: true });
    const found: { hash: string; size: number; mtime: number }[] = [];
    for (let b = 0; b < 256; b++) {
      const sub = join(chunksDir, b.toString(16).padStart(2, '0'));
      await fs.mkdir(sub, { recursive: true });
      for (const name of await fs.readdir(sub)) {
        if (name.startsWith(TMP_PREFIX)) {
          // A put that crashed before its rename: never visible, safe to drop.
          await fs.rm(join(sub, name), { force: true });
          this.counters.cleanedTempFiles++;
        } else if (SHA256_HEX.test(name)) {
          const st = await fs.stat(join(sub, name));
          found.push({ hash: name, size: st.size, mtime: st.mtimeMs });
        }
      }
    }
    await fsyncDir(chunksDir);
    // Volume records are written like manifests: a crash leaves at most a `.tmp-` file.
    const volumesDir = join(this.dir, 'volumes');
    await fs.mkdir(volumesDir, { recursive: true });
    for (const name of await fs.readdir(volumesDir)) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      await fs.rm(join(volumesDir, name), { force: true });
      this.counters.cleanedTempFiles++;
    }
    // Restore recency from mtimes, which get() refreshes.
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      this.index.set(f.hash, f.size);
      this.bytes += f.size;
    }
    for (const r of ['pinned', 'baseline'] as const) {
      const mdir = join(this.dir, 'manifests', r);
      for (const name of await fs.readdir(mdir)) {
        if (name.startsWith(TMP_PREFIX)) {
          await fs.rm(join(mdir, name), { force: true });
          this.counters.cleanedTempFiles++;
          continue;
        }
        const root = name.replace(/\.json$/, '');
        try {
          const m = verifyManifest(JSON.parse(await fs.readFile(join(mdir, name), 'utf8')));
          if (m.rootHash !== root) throw new Error(`file is named ${root} but holds manifest ${m.rootHash}`);
          if (this.manifests.has(root)) {
            this.warnings.push(`manifest ${root} was both pinned and baseline (a crash during setRetention); kept pinned`);
            if (r === 'baseline') await fs.rm(join(mdir, name), { force: true });
            continue;
          }
          this.manifests.set(root, r);
          this.manifestAt.set(root, (await fs.stat(join(mdir, name))).mtimeMs);
          this.addRefs(m, r, +1);
        } catch (err) {
          this.warnings.push(`ignored manifest file ${join(mdir, name)}: ${(err as Error).message}`);
        }
      }
    }
  }

  private addRefs(m: Manifest, r: Retention, delta: 1 | -1): void {
    for (const hash of new Set(m.chunks.map((c) => c.hash))) {
      const refs = this.refs.get(hash) ?? { pinned: 0, baseline: 0 };
      const wasPinned = refs.pinned > 0;
      refs[r] += delta;
      const isPinned = refs.pinned > 0;
      if (refs.pinned === 0 && refs.baseline === 0) this.refs.delete(hash);
      else this.refs.set(hash, refs);
      const size = this.index.get(hash);
      if (size !== undefined && wasPinned !== isPinned) this.pinnedBytes += isPinned ? size : -size;
    }
  }

  private isPinned(hash: string): boolean {
    return (this.refs.get(hash)?.pinned ?? 0) > 0;
  }

  /** Whether the chunk is held. Synchronous, so a store can be passed to diffManifest as a baseline. */
  has(hash: string): boolean {
    const present = this.index.has(hash);
    if (present) this.counters.hits++;
    else this.counters.misses++;
    return present;
  }

  /** The chunks of `manifest` this store lacks. */
  missing(manifest: Manifest): ManifestDelta {
    return diffManifest(manifest, this);
  }

  /**
   * The chunk's bytes, or undefined when it is not held. Throws ChunkHashMismatchError (after
   * removing the chunk) when the stored bytes no longer match their hash.
   */
  async get(hash: string): Promise<Buffer | undefined> {
    checkHashName(hash);
    return this.read(hash);
  }

  private async read(hash: string): Promise<Buffer | undefined> {
    const size = this.index.get(hash);
    if (size === undefined) {
      this.counters.misses++;
      return undefined;
    }
    let data: Buffer;
    try {
      data = await fs.readFile(this.chunkPath(hash));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Evicted or deleted while we were reading.
      this.counters.misses++;
      return undefined;
    }
    if (this.verifyOnRead) {
      // On the thread pool (WebCrypto), so that assemble's many reads hash in parallel.
      const actual = Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
      if (actual !== hash) {
        this.counters.corruptChunks++;
        await this.remove(hash);
        throw new ChunkHashMismatchError(hash, actual, 'read');
      }
    }
    this.counters.hits++;
    this.touch(hash, size);
    const now = new Date();
    await fs.utimes(this.chunkPath(hash), now, now).catch(() => undefined);
    return data;
  }

  private touch(hash: string, size: number): void {
    if (this.index.delete(hash)) this.index.set(hash, size);
  }

  /**
   * Stores a chunk under its sha256. Refuses (ChunkHashMismatchError) bytes that do not hash to
   * `hash`, before anything touches the disk. Returns 'duplicate' when the chunk was already held.
   */
  async put(hash: string, data: Uint8Array): Promise<'stored' | 'duplicate'> {
    checkHashName(hash);
    const actual = sha256Hex(data);
    if (actual !== hash) {
      this.counters.rejectedPuts++;
      throw new ChunkHashMismatchError(hash, actual, 'put');
    }
    const held = this.index.get(hash);
    if (held !== undefined) {
      this.counters.duplicatePuts++;
      this.touch(hash, held);
      return 'duplicate';
    }
    await this.makeRoom(data.length);
    try {
      await this.unlinking.get(hash);
      await fs.mkdir(this.chunkDir(hash), { recursive: true });
      await writeFileDurable(this.chunkPath(hash), data);
      if (this.index.has(hash)) {
        // A concurrent put of the same bytes won the rename; the content is identical.
        this.counters.duplicatePuts++;
        return 'duplicate';
      }
      this.index.set(hash, data.length);
      this.bytes += data.length;
      if (this.isPinned(hash)) this.pinnedBytes += data.length;
      this.counters.puts++;
      return 'stored';
    } finally {
      this.reservedBytes -= data.length;
      for (const wake of this.roomWaiters.splice(0)) wake();
    }
  }

  /**
   * Stores many chunks with one group commit, for a transfer that receives chunks in batches: the
   * same crash safety as put() (each chunk is written to a `.tmp-` file and fsynced, then renamed,
   * then its directory fsynced), but the fsyncs of a group run concurrently and each directory is
   * fsynced once per group, not once per chunk. Bytes that do not hash to their name are refused before anything touches the disk,
   * and reported as 'rejected' (the others are stored): a transfer refetches those.
   * Returns one result per entry, in order.
   */
  async putMany(entries: readonly { hash: string; data: Uint8Array }[]): Promise<('stored' | 'duplicate' | 'rejected')[]> {
    for (const e of entries) checkHashName(e.hash);
    // One-shot sha256 on this thread (~1 GB/s on 8-64 KiB chunks): as WebCrypto on the thread pool,
    // each digest queued behind the group's own fsyncs, which measured slower.
    const digests = entries.map((e) => oneShotHash('sha256', e.data, 'buffer'));
    const results: ('stored' | 'duplicate' | 'rejected')[] = [];
    const fresh: { hash: string; data: Uint8Array; tmp: string; at: number }[] = [];
    const inGroup = new Set<string>();
    entries.forEach((e, i) => {
      if (digests[i]!.toString('hex') !== e.hash) {
        this.counters.rejectedPuts++;
        results.push('rejected');
      } else if (this.index.has(e.hash) || inGroup.has(e.hash)) {
        this.counters.duplicatePuts++;
        const held = this.index.get(e.hash);
        if (held !== undefined) this.touch(e.hash, held);
        results.push('duplicate');
      } else {
        inGroup.add(e.hash);
        fresh.push({ hash: e.hash, data: e.data, at: i, tmp: join(this.chunkDir(e.hash), `${TMP_PREFIX}${e.hash}-${randomBytes(6).toString('hex')}`) });
        results.push('stored');
      }
    });
    let reserved = 0;
    try {
      for (const f of fresh) {
        await this.makeRoom(f.data.length);
        reserved += f.data.length;
      }
      await Promise.all(fresh.map((f) => this.unlinking.get(f.hash)));
      const dirs = [...new Set(fresh.map((f) => this.chunkDir(f.hash)))];
      await Promise.all(dirs.map((d) => fs.mkdir(d, { recursive: true })));
      try {
        await Promise.all(
          fresh.map(async (f) => {
            const h = await fs.open(f.tmp, 'wx');
            try {
              await h.writeFile(f.data);
              await h.sync();
            } finally {
              await h.close();
            }
          }),
        );
      } catch (err) {
        await Promise.all(fresh.map((f) => fs.rm(f.tmp, { force: true })));
        throw err;
      }
      await Promise.all(fresh.map((f) => fs.rename(f.tmp, this.chunkPath(f.hash))));
      await Promise.all(dirs.map((d) => fsyncDir(d)));
      for (const f of fresh) {
        if (this.index.has(f.hash)) {
          // A concurrent put of the same bytes won the rename; the content is identical.
          this.counters.duplicatePuts++;
          results[f.at] = 'duplicate';
          continue;
        }
        this.index.set(f.hash, f.data.length);
        this.bytes += f.data.length;
        if (this.isPinned(f.hash)) this.pinnedBytes += f.data.length;
        this.counters.puts++;
      }
      return results;
    } finally {
      this.reservedBytes -= reserved;
      for (const wake of this.roomWaiters.splice(0)) wake();
    }
  }

  /**
   * Reserves `incoming` bytes under maxBytes, first evicting least recently used unpinned chunks.
   * When only other puts' in-flight bytes stand in the way, waits for them to land (they may then
   * be evicted); throws ChunkStoreFullError when pinned chunks alone leave no room.
   */
  private async makeRoom(incoming: number): Promise<void> {
    for (;;) {
      // Everything up to the reservation is synchronous, so concurrent puts see each other's.
      const over = this.bytes + this.reservedBytes + incoming - this.maxBytes;
      if (over <= 0) {
        this.reservedBytes += incoming;
        return;
      }
      if (this.bytes - this.pinnedBytes >= over) {
        let freed = 0;
        const victims: string[] = [];
        for (const [hash, size] of this.index) {
          if (freed >= over) break;
          if (this.isPinned(hash)) continue;
          victims.push(hash);
          freed += size;
          this.counters.evictedChunks++;
          this.counters.evictedBytes += size;
        }
        const unlinks = victims.map((h) => this.remove(h));
        this.reservedBytes += incoming;
        try {
          await Promise.all(unlinks);
        } catch (err) {
          this.reservedBytes -= incoming;
          throw err;
        }
        return;
      }
      if (this.reservedBytes === 0 || incoming > this.maxBytes - this.pinnedBytes) {
        throw new ChunkStoreFullError(incoming, this.maxBytes, this.pinnedBytes);
      }
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Drops the chunk from the index at once, then unlinks its file. */
  private remove(hash: string): Promise<void> {
    const size = this.index.get(hash);
    if (size === undefined) return this.unlinking.get(hash) ?? Promise.resolve();
    this.index.delete(hash);
    this.bytes -= size;
    if (this.isPinned(hash)) this.pinnedBytes -= size;
    const done = fs.rm(this.chunkPath(hash), { force: true }).finally(() => {
      if (this.unlinking.get(hash) === done) this.unlinking.delete(hash);
    });
    this.unlinking.set(hash, done);
    return done;
  }

  /** Removes a chunk; returns whether it was held. A pinned manifest that needs it then lacks it. */
  async delete(hash: string): Promise<boolean> {
    checkHashName(hash);
    const held = this.index.has(hash);
    await this.remove(hash);
    return held;
  }

  /** Stores a manifest under its root hash after verifying it. Its chunks need not be present yet. */
  async putManifest(input: Manifest, retention: Retention = 'pinned'): Promise<void> {
    const m = verifyManifest(input);
    const current = this.manifests.get(m.rootHash);
    this.manifestAt.set(m.rootHash, Date.now());
    if (current !== undefined) {
      if (current !== retention) await this.setRetention(m.rootHash, retention);
      return;
    }
    await writeFileDurable(this.manifestPath(m.rootHash, retention), JSON.stringify(m));
    this.manifests.set(m.rootHash, retention);
    this.addRefs(m, retention, +1);
  }

  async getManifest(rootHash: string): Promise<Manifest | undefined> {
    const r = this.manifests.get(rootHash);
    if (r === undefined) return undefined;
    return JSON.parse(await fs.readFile(this.manifestPath(rootHash, r), 'utf8')) as Manifest;
  }

  /** Roots of held manifests, most recently put first: the bases a manifest delta may name. */
  recentManifestRoots(limit = 8): string[] {
    return [...this.manifests.keys()].sort((a, b) => (this.manifestAt.get(b) ?? 0) - (this.manifestAt.get(a) ?? 0)).slice(0, limit);
  }

  listManifests(): { rootHash: string; retention: Retention }[] {
    return [...this.manifests].map(([rootHash, retention]) => ({ rootHash, retention }));
  }

  /** Pins a manifest's chunks against eviction, or releases them to be a baseline only. */
  async setRetention(rootHash: string, retention: Retention): Promise<void> {
    const from = this.manifests.get(rootHash);
    if (from === undefined) throw new ManifestNotFoundError(rootHash);
    if (from === retention) return;
    const m = (await this.getManifest(rootHash))!;
    await fs.rename(this.manifestPath(rootHash, from), this.manifestPath(rootHash, retention));
    await fsyncDir(dirname(this.manifestPath(rootHash, retention)));
    await fsyncDir(dirname(this.manifestPath(rootHash, from)));
    this.addRefs(m, from, -1);
    this.addRefs(m, retention, +1);
    this.manifests.set(rootHash, retention);
  }

  /** Forgets a manifest; its chunks stay until gc() or eviction. */
  async deleteManifest(rootHash: string): Promise<boolean> {
    const r = this.manifests.get(rootHash);
    if (r === undefined) return false;
    const m = (await this.getManifest(rootHash))!;
    await fs.rm(this.manifestPath(rootHash, r), { force: true });
    await fsyncDir(dirname(this.manifestPath(rootHash, r)));
    this.manifests.delete(rootHash);
    this.manifestAt.delete(rootHash);
    this.addRefs(m, r, -1);
    return true;
  }

  /** Removes every chunk that no retained manifest (pinned or baseline) references. */
  async gc(): Promise<{ removedChunks: number; removedBytes: number }> {
    const victims: string[] = [];
    let removedBytes = 0;
    for (const [hash, size] of this.index) {
      if (!this.refs.has(hash)) {
        victims.push(hash);
        removedBytes += size;
      }
    }
    await Promise.all(victims.map((h) => this.remove(h)));
    return { removedChunks: victims.length, removedBytes };
  }

  /** One chunk's bytes for assemble(), read synchronously; refreshes its mtime (recency) as get() does. */
  private readForAssemble(rootHash: string, ref: ChunkRef): Buffer {
    let fd: number;
    try {
      fd = openSync(this.chunkPath(ref.hash), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingChunksError(rootHash, [ref.hash]);
      throw err;
    }
    try {
      // One byte more than expected, to notice a file longer than the manifest says.
      const buf = Buffer.allocUnsafe(ref.length + 1);
      let got = 0;
      for (;;) {
        const n = readSync(fd, buf, got, buf.length - got, got);
        if (n === 0) break;
        got += n;
        if (got === buf.length) break;
      }
      if (got !== ref.length) throw new Error(`chunk ${ref.hash} at offset ${ref.offset} is ${got === buf.length ? 'longer' : `${got} bytes`}; the manifest says ${ref.length}`);
      const now = new Date();
      try {
        futimesSync(fd, now, now);
      } catch {
        /* recency is a hint */
      }
      return buf.subarray(0, ref.length);
    } finally {
      closeSync(fd);
    }
  }

  private volumeRecordPath(path: string): string {
    return join(this.dir, 'volumes', `${sha256Hex(Buffer.from(path))}.json`);
  }

  /** The basis manifest for `basisPath`, or why it cannot be used. */
  private async basisFor(basisPath: string): Promise<{ manifest: Manifest } | { refused: string }> {
    let rec: AssembledVolume;
    try {
      rec = JSON.parse(await fs.readFile(this.volumeRecordPath(basisPath), 'utf8')) as AssembledVolume;
    } catch {
      return { refused: `no record of this store assembling ${basisPath}` };
    }
    const now = fileIdentity(basisPath);
    if (rec.state === 'patching') return { refused: `${basisPath} was left mid-update (to ${rec.rootHash}) by a crash` };
    if (!now || rec.path !== basisPath) return { refused: `${basisPath} is gone` };
    for (const k of ['dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'] as const) {
      if (now[k] !== rec[k]) return { refused: `${basisPath} changed since this store wrote it (${k} ${rec[k]} -> ${now[k]})` };
    }
    const manifest = await this.getManifest(rec.rootHash);
    if (!manifest) return { refused: `the manifest ${rec.rootHash} of ${basisPath} is no longer in the store` };
    return { manifest };
  }

  /**
   * Writes the volume of a stored manifest to `destPath`, crash-safe like every other write: the
   * file appears whole or not at all (temp file, fsync, rename, fsync of the directory). Chunks come
   * from the store, each verified on read, or, with `opts.basisPath`, from an earlier volume this
   * store wrote (see AssembleOptions).
   */
  async assemble(rootHash: string, destPath: string, opts: AssembleOptions = {}): Promise<{ bytes: number; chunks: number }> {
    const m = await this.getManifest(rootHash);
    if (!m) throw new ManifestNotFoundError(rootHash);
    const basis = opts.basisPath === undefined ? undefined : await this.basisFor(opts.basisPath);
    const plan = basis && 'manifest' in basis ? planAssembly(m.chunks, basis.manifest.chunks) : undefined;
    const fromStore = plan ? plan.fromStore : m.chunks;
    const missing = [...new Set(fromStore.map((c) => c.hash))].filter((h) => !this.index.has(h));
    if (missing.length > 0) throw new MissingChunksError(rootHash, missing);
    const figures: AssembleFigures = {
      basisUsed: plan !== undefined,
      ...(basis && 'refused' in basis ? { basisRefused: basis.refused } : {}),
      inPlaceBytes: 0,
      movedBytes: 0,
      storeBytes: 0,
      copyMs: 0,
      writeMs: 0,
      syncMs: 0,
    };
    if (plan && basis && 'manifest' in basis && opts.inPlace && opts.basisPath === destPath) {
      // (1) Runs of the basis that only moved (an insertion or deletion) are moved within the
      // file, the new chunks written from chunk files. Needs every chunk of the new manifest in
      // the store, so that a crash mid-update can be redone from the store alone.
      const moves = orderMovesInPlace(plan.runs);
      if (moves && plan.storeBytes <= m.totalBytes / IN_PLACE_MAX_CHANGED && m.chunks.every((c) => this.index.has(c.hash))) {
        figures.inPlace = true;
        await this.patchInPlace(m, destPath, plan.fromStore, moves, figures);
        opts.onFigures?.(figures);
        return { bytes: m.totalBytes, chunks: m.chunks.length };
      }
      // (2) Otherwise, when little is not in place: every chunk not in place from its chunk file
      // (redo needs only those).
      if (m.totalBytes - plan.inPlaceBytes <= m.totalBytes / IN_PLACE_MAX_CHANGED) {
        const basisAt = new Map<number, string>();
        for (const c of basis.manifest.chunks) basisAt.set(c.offset, c.hash);
        const changed = m.chunks.filter((c) => basisAt.get(c.offset) !== c.hash);
        if (changed.every((c) => this.index.has(c.hash))) {
          figures.inPlace = true;
          await this.patchInPlace(m, destPath, changed, [], figures);
          opts.onFigures?.(figures);
          return { bytes: m.totalBytes, chunks: m.chunks.length };
        }
      }
    }
    const tmp = join(dirname(destPath), `${TMP_PREFIX}${basename(destPath)}-${randomBytes(6).toString('hex')}`);
    const t0 = performance.now();
    // A kernel-side copy of the whole basis, then rewriting what is not in place, beats moving
    // every byte through this process once a quarter of the volume is in place (an insertion
    // in the middle leaves half of it in place).
    const copyBasis = plan !== undefined && plan.inPlaceBytes >= m.totalBytes / 4;
    if (copyBasis) {
      // Kernel-side copy (copy_file_range / sendfile): the bytes never enter this process.
      await fs.copyFile(opts.basisPath!, tmp, fsConstants.COPYFILE_EXCL);
      figures.inPlaceBytes = plan.inPlaceBytes;
    }
    const out = await fs.open(tmp, copyBasis ? 'r+' : 'wx');
    let bytes = 0;
    // The write of one window runs on the thread pool while the next window is read and hashed.
    let writing: Promise<unknown> = Promise.resolve();
    let basisFd: number | undefined;
    try {
      if (copyBasis) await out.truncate(m.totalBytes);
      figures.copyMs = performance.now() - t0;
      const t1 = performance.now();
      if (plan) {
        basisFd = openSync(opts.basisPath!, 'r');
        const windows = [Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES), Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES)];
        let flip = 0;
        for (const r of plan.runs) {
          if (copyBasis && r.from === r.offset) continue;
          // Basis ranges not in place (or no copy was made): read and write in windows.
          for (let done = 0; done < r.length; ) {
            const n = Math.min(ASSEMBLE_WINDOW_BYTES, r.length - done);
            // Two buffers in turn: one being written while the other is read into.
            const buf = windows[flip++ & 1]!.subarray(0, n);
            let got = 0;
            while (got < n) {
              const k = readSync(basisFd, buf, got, n - got, r.from + done + got);
              if (k === 0) throw new Error(`basis ${opts.basisPath} ended at ${r.from + done + got}; its manifest says it is longer`);
              got += k;
            }
            await writing;
            writing = out.write(buf, 0, n, r.offset + done);
            done += n;
            if (r.from === r.offset) figures.inPlaceBytes += n;
            else figures.movedBytes += n;
          }
        }
      }
      await writing;
      figures.storeBytes += await this.writeStoreChunks(rootHash, fromStore, out);
      await writing;
      bytes = m.totalBytes;
      figures.writeMs = performance.now() - t1;
      const t2 = performance.now();
      await out.sync();
      figures.syncMs = performance.now() - t2;
    } catch (err) {
      await writing.catch(() => undefined);
      await out.close();
      await fs.rm(tmp, { force: true });
      throw err;
    } finally {
      if (basisFd !== undefined) closeSync(basisFd);
    }
    await out.close();
    const t3 = performance.now();
    await fs.rename(tmp, destPath);
    await fsyncDir(dirname(destPath));
    await this.recordVolume(destPath, rootHash);
    figures.syncMs += performance.now() - t3;
    opts.onFigures?.(figures);
    return { bytes, chunks: m.chunks.length };
  }

  /**
   * Reads `refs` from chunk files (each verified, when verifyOnRead) and writes them at their
   * offsets in `out`. One window at a time: chunk files read and hashed synchronously (a 16 KiB read
   * from the page cache costs less than the thread-pool round trips of an async one, and a volume
   * has tens of thousands of chunks; measured, this beat async reads with WebCrypto hashing 2:1),
   * contiguous chunks written with one call while the next window is read. The event loop gets a
   * turn per window. Memory: two windows. Returns the bytes written.
   */
  private async writeStoreChunks(rootHash: string, refs: readonly ChunkRef[], out: fs.FileHandle): Promise<number> {
    let writing: Promise<unknown> = Promise.resolve();
    let bytes = 0;
    try {
      for (let k = 0; k < refs.length; ) {
        const win: { ref: ChunkRef; data: Buffer }[] = [];
        let winBytes = 0;
        for (; k < refs.length && winBytes < ASSEMBLE_WINDOW_BYTES; k++) {
          const ref = refs[k]!;
          const data = this.readForAssemble(rootHash, ref);
          if (this.verifyOnRead) {
            // One-shot hash: 2-3x faster than createHash on chunks of 8-64 KiB.
            const actual = oneShotHash('sha256', data, 'hex');
            if (actual !== ref.hash) {
              this.counters.corruptChunks++;
              await this.remove(ref.hash);
              throw new ChunkHashMismatchError(ref.hash, actual, 'read');
            }
          }
          win.push({ ref, data });
          winBytes += ref.length;
        }
        await writing;
        const writes: Promise<unknown>[] = [];
        for (let a = 0; a < win.length; ) {
          let b = a + 1;
          while (b < win.length && win[b]!.ref.offset === win[b - 1]!.ref.offset + win[b - 1]!.ref.length) b++;
          writes.push(out.writev(win.slice(a, b).map((w) => w.data), win[a]!.ref.offset));
          a = b;
        }
        writing = Promise.all(writes);
        bytes += winBytes;
        for (const w of win) {
          this.counters.hits++;
          this.touch(w.ref.hash, w.ref.length);
        }
      }
      await writing;
    } finally {
      await writing.catch(() => undefined);
    }
    return bytes;
  }

  /**
   * Updates the volume at `path` (which holds basis manifest `basis`, per this store's record) to
   * manifest `m` in place, writing only the ranges that differ, all from chunk files (so the update
   * can always be redone from the store alone). Not atomic like the temp-file path, but never
   * silently torn: a durable record marks the file 'patching' before the first write, so after a
   * crash the file is known incomplete (its record no longer matches it: basisFor refuses it, and
   * volumeState says 'incomplete') and the next assemble rewrites it whole from the store.
   */
  private async patchInPlace(m: Manifest, path: string, changed: readonly ChunkRef[], moves: readonly BasisRun[], figures: AssembleFigures): Promise<void> {
    const t0 = performance.now();
    await writeFileDurable(this.volumeRecordPath(path), JSON.stringify({ path, rootHash: m.rootHash, state: 'patching' }));
    const out = await fs.open(path, 'r+');
    try {
      const t1 = performance.now();
      figures.copyMs = t1 - t0;
      // Moves first (in the order orderMovesInPlace gives, each run copied away from the bytes it
      // has yet to read), then the new chunks, some of which land where moved bytes were read.
      const buf = Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES);
      for (const r of moves) {
        const backwards = r.from < r.offset;
        for (let done = 0; done < r.length; ) {
          const n = Math.min(ASSEMBLE_WINDOW_BYTES, r.length - done);
          const at = backwards ? r.length - done - n : done;
          let got = 0;
          while (got < n) {
            const k = readSync(out.fd, buf, got, n - got, r.from + at + got);
            if (k === 0) throw new Error(`${path} ended at ${r.from + at + got}; its basis manifest says it is longer`);
            got += k;
          }
          await out.write(buf, 0, n, r.offset + at);
          done += n;
          figures.movedBytes += n;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      figures.storeBytes = await this.writeStoreChunks(m.rootHash, changed, out);
      await out.truncate(m.totalBytes);
      figures.inPlaceBytes = m.totalBytes - figures.storeBytes - figures.movedBytes;
      const t2 = performance.now();
      figures.writeMs = t2 - t1;
      await out.sync();
      figures.syncMs = performance.now() - t2;
    } finally {
      await out.close();
    }
    const t3 = performance.now();
    await this.recordVolume(path, m.rootHash);
    figures.syncMs += performance.now() - t3;
  }

  /** Whether the file at `path` is a whole volume this store wrote (and which), or one left mid-update by a crash. */
  async volumeState(path: string): Promise<{ state: 'complete'; rootHash: string } | { state: 'incomplete'; rootHash: string } | { state: 'unknown' }> {
    try {
      const rec = JSON.parse(await fs.readFile(this.volumeRecordPath(path), 'utf8')) as Partial<AssembledVolume> & { state?: string; rootHash: string };
      if (rec.state === 'patching') return { state: 'incomplete', rootHash: rec.rootHash };
      const b = await this.basisFor(path);
      return 'manifest' in b ? { state: 'complete', rootHash: rec.rootHash } : { state: 'unknown' };
    } catch {
      return { state: 'unknown' };
    }
  }

  /** Remembers what was just written at `path`, so a later assemble can use it as its basis. */
  private async recordVolume(path: string, rootHash: string): Promise<void> {
    const id = fileIdentity(path);
    if (!id) return;
    await fs.mkdir(join(this.dir, 'volumes'), { recursive: true });
    const rec: AssembledVolume = { path, rootHash, ...id };
    await writeFileDurable(this.volumeRecordPath(path), JSON.stringify(rec));
  }

  stats(): ChunkStoreStats {
    return { chunks: this.index.size, bytes: this.bytes, pinnedBytes: this.pinnedBytes, manifests: this.manifests.size, ...this.counters };
  }
}
