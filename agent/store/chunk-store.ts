/**
 * A site's content-addressed chunk store on disk.
 *
 * Layout under `dir` (store format 2, "packs"):
 *   packs/index.log                                 the chunk index: an append-only log of
 *                                                  checksummed records (ADD hash -> pack, offset,
 *                                                  length; DEL hash from pack)
 *   packs/<16 hex digits>.pack                      chunk bytes, appended one group commit at a time
 *   manifests/pinned/<root hash>.json              manifests whose chunks are never evicted
 *   manifests/baseline/<root hash>.json            manifests kept as a dedup baseline: evictable
 *   volumes/<sha256 of the path>.json               what assemble() last wrote at a path, and that
 *                                                  file's identity (see AssembledVolume)
 *
 * Chunks: a group commit (putMany, or concurrent puts merged) appends the group's bytes to the
 * current pack and fdatasyncs it, then appends one ADD record per chunk to the index log and
 * fdatasyncs that: a chunk is in the store once its ADD record is durable, and an ADD record is
 * only ever written after the bytes it points at are. Two fsyncs per group instead of two per
 * chunk (format 1 wrote one file per chunk: temp file, fsync, rename, directory fsync). Recovery
 * (open) replays the log and truncates it at the first record that is short or fails its CRC-32
 * (a write torn by a crash: never acknowledged); pack bytes no durable record points at are dead
 * and are reclaimed (a pack nothing live points at is deleted, a mostly dead one compacted).
 * Removals (eviction, gc, delete, a chunk found corrupt) append DEL records, durable before they
 * return, so a removed chunk never comes back after a restart.
 *
 * Manifests and volume records are small files written crash-safe: a `.tmp-` file in the same
 * directory, fsync, rename, fsync of the directory; a crash leaves at most a `.tmp-` file, removed
 * by the next open(). Chunk bytes are verified against their hash on put and (by default) on read.
 *
 * A format-1 store (`chunks/<xx>/<sha256>` files) is migrated on open: each chunk file is read,
 * verified (a bad one is dropped), appended to packs, and unlinked once its ADD record is durable;
 * a crash mid-migration resumes at the next open.
 *
 * One ChunkStore instance per directory: the index and the counters live in memory.
 */
import { createHash, hash as oneShotHash, randomBytes, webcrypto } from 'node:crypto';
import { close as closeCb, closeSync, constants as fsConstants, fdatasync as fdatasyncCb, fsync as fsyncCb, ftruncate as ftruncateCb, open as openCb, openSync, promises as fs, readSync, statSync, write as writeCb, writev as writevCb } from 'node:fs';
import { promisify } from 'node:util';
import { join, dirname, basename } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ChunkBaseline } from '../../core/manifest-diff';
import { diffManifest, ManifestDelta } from '../../core/manifest-diff';
import { ChunkRef, Manifest, SHA256_HEX } from '../../core/manifest';
import { orderMovesInPlace, planAssembly, type BasisRun } from '../../core/manifest-basis';
import { verifyManifest } from '../capture/manifest-builder';
import { ChunkHashMismatchError, ChunkStoreFullError, ManifestNotFoundError, MissingChunksError } from './errors';

export type Retention = 'pinned' | 'baseline';

export interface ChunkStoreOptions {
  /** Bound on the bytes of stored chunks. Over it, least recently used unpinned chunks are evicted. */
  maxBytes?: number;
  /** Re-hash chunks when reading them (default true): catches disk corruption before it spreads. */
  verifyOnRead?: boolean;
}

export interface ChunkStoreStats {
  chunks: number;
  /** Bytes of the chunks held (each distinct chunk once): what maxBytes bounds. */
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
  /** Pack files on disk and their bytes (live chunks plus dead space not yet reclaimed). */
  packs: number;
  packBytes: number;
  /** Bytes of a torn tail cut from the index log by open() (a group commit a crash interrupted). */
  truncatedLogBytes: number;
  /** Packs deleted because nothing live was left in them (or, at open, nothing durable pointed at them). */
  removedPacks: number;
  /** Packs rewritten to reclaim the space of removed chunks. */
  compactedPacks: number;
  /** Chunk files of a format-1 store moved into packs by open(). */
  migratedChunks: number;
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
/** While assemble writes a volume, an fdatasync is started every this many bytes (see EarlySync). */
const EARLY_SYNC_BYTES = 32 << 20;

/**
 * Starts an fdatasync of a file being written every EARLY_SYNC_BYTES (one at a time, not waited
 * for), so that the disk writes the volume back while the rest of it is still being written and
 * the fsync at the end waits only for the tail. Never instead of that final fsync; an error of an
 * early one is thrown by settle() (an fsync error may be reported only once, so it is never
 * dropped).
 */
class EarlySync {
  private pending = 0;
  private running: Promise<void> | undefined;
  private failed: unknown;
  constructor(private readonly out: fs.FileHandle) {}
  wrote(n: number): void {
    this.pending += n;
    if (this.pending < EARLY_SYNC_BYTES || this.running) return;
    this.pending = 0;
    this.running = this.out.datasync().then(
      () => void (this.running = undefined),
      (err: unknown) => {
        this.failed ??= err;
        this.running = undefined;
      },
    );
  }
  /** Waits for an early sync under way; throws the first one that failed. */
  async settle(): Promise<void> {
    await this.running;
    if (this.failed !== undefined) throw this.failed;
  }
}

/** A pack takes appends until it holds this many bytes; the next group starts a new one. */
const PACK_MAX_BYTES = 64 << 20;
/** A sealed pack whose live bytes fall below this fraction of its size is compacted. */
const PACK_MIN_LIVE = 0.5;
/** Chunk bytes per group when open() migrates a format-1 store. */
const MIGRATE_GROUP_BYTES = 4 << 20;
const LOG_NAME = 'index.log';
/** Parsed manifests kept in memory (a 512 MiB volume in 8 KiB chunks: ~50 000 entries, a few MB). */
const MANIFEST_CACHE = 2;
const LOG_MAGIC = Buffer.from('FFCHUNK2', 'latin1');
const PACK_ID = /^([0-9a-f]{16})\.pack$/;
const REC_ADD = 1;
const REC_DEL = 2;
/** type u8, pack id (8 bytes), offset u32, length u32, sha256 (32 bytes), CRC-32 of the 49 before it. */
const REC_BYTES = 53;

interface LogRecord {
  type: typeof REC_ADD | typeof REC_DEL;
  pack: string;
  offset: number;
  length: number;
  hash: string;
}

function encodeRecord(r: LogRecord, out: Buffer, at: number): void {
  out.writeUInt8(r.type, at);
  out.write(r.pack, at + 1, 8, 'hex');
  out.writeUInt32LE(r.offset, at + 9);
  out.writeUInt32LE(r.length, at + 13);
  out.write(r.hash, at + 17, 32, 'hex');
  out.writeUInt32LE(crc32(out.subarray(at, at + 49)), at + 49);
}

/** The records of an index log, and the length of its valid prefix (a torn tail is not part of it). */
export function decodeIndexLog(buf: Buffer): { records: LogRecord[]; validBytes: number } {
  const records: LogRecord[] = [];
  if (buf.length < LOG_MAGIC.length || !buf.subarray(0, LOG_MAGIC.length).equals(LOG_MAGIC)) return { records, validBytes: 0 };
  let at = LOG_MAGIC.length;
  for (; at + REC_BYTES <= buf.length; at += REC_BYTES) {
    const type = buf.readUInt8(at);
    if ((type !== REC_ADD && type !== REC_DEL) || crc32(buf.subarray(at, at + 49)) !== buf.readUInt32LE(at + 49)) break;
    records.push({ type, pack: buf.toString('hex', at + 1, at + 9), offset: buf.readUInt32LE(at + 9), length: buf.readUInt32LE(at + 13), hash: buf.toString('hex', at + 17, at + 49) });
  }
  return { records, validBytes: at };
}

interface Pack {
  id: string;
  path: string;
  /** Bytes written and durable (the end of the last committed group). */
  size: number;
  /** Bytes of live chunks in it. */
  live: number;
  /** For synchronous reads, opened on first use. */
  fd?: number;
}

interface Loc {
  pack: Pack;
  offset: number;
  length: number;
}

/** One commit of the writer: chunk bytes to append, records to log. */
interface WriteJob {
  adds: { hash: string; data: Uint8Array }[];
  dels: { hash: string; pack: string }[];
  resolve: (locs: Loc[]) => void;
  reject: (err: unknown) => void;
}

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

const fdOpen = promisify(openCb);
const fdClose = promisify(closeCb);
const fdWrite = promisify(writeCb);
const fdWritev = promisify(writevCb);
const fdDatasync = promisify(fdatasyncCb);
const fdSync = promisify(fsyncCb);
const fdTruncate = promisify(ftruncateCb);

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function checkHashName(hash: string): void {
  if (!SHA256_HEX.test(hash)) throw new TypeError(`chunk hash '${hash}' is not 64 lower-case hex digits (a sha256)`);
}

export class ChunkStore implements ChunkBaseline {
  /** Present chunks and where they are, in least- to most-recently-used order (Map keeps insertion order). */
  private readonly index = new Map<string, Loc>();
  private readonly refs = new Map<string, Refs>();
  private readonly manifests = new Map<string, Retention>();
  /** When each manifest was last put (its file's mtime after a restart): recency for delta bases. */
  private readonly manifestAt = new Map<string, number>();
  private readonly packs = new Map<string, Pack>();
  /** Parsed manifests, least recently used first (at most MANIFEST_CACHE). */
  private readonly parsed = new Map<string, Manifest>();
  /** The pack group commits append to (opened on the first put after open()). */
  private current: { pack: Pack; fd: number } | undefined;
  /** The index log, open for appends (raw fds: a store lives as long as its process). */
  private logFd = -1;
  private logSize = 0;
  private readonly writeQueue: WriteJob[] = [];
  private writing = false;
  /** Chunks of group commits under way, so that a concurrent put of the same hash waits for them. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  private compacting: Promise<void> | undefined;
  private bytes = 0;
  private pinnedBytes = 0;
  /** Bytes of puts between makeRoom and their index entry, so concurrent puts respect the bound together. */
  private reservedBytes = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly counters = {
    hits: 0, misses: 0, puts: 0, duplicatePuts: 0, rejectedPuts: 0, evictedChunks: 0, evictedBytes: 0, corruptChunks: 0, cleanedTempFiles: 0,
    truncatedLogBytes: 0, removedPacks: 0, compactedPacks: 0, migratedChunks: 0,
  };
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

  /**
   * Opens (creating if needed) the store at `dir`: replays the chunk index (cutting a torn tail),
   * removes what a crash left (temp files, packs no durable record points at), migrates a format-1
   * store, and loads the manifests.
   */
  static async open(dir: string, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const store = new ChunkStore(dir, opts);
    await store.load();
    return store;
  }

  /** Closes the store's files. Pending writes finish first. The instance must not be used after. */
  async close(): Promise<void> {
    while (this.writing || this.writeQueue.length) await new Promise((r) => setTimeout(r, 1));
    await this.compacting;
    for (const p of this.packs.values()) this.closePackFd(p);
    if (this.current) await fdClose(this.current.fd);
    this.current = undefined;
    await fdClose(this.logFd);
    this.logFd = -1;
  }

  private get packsDir(): string {
    return join(this.dir, 'packs');
  }
  private manifestPath(root: string, r: Retention): string {
    return join(this.dir, 'manifests', r, `${root}.json`);
  }

  private async load(): Promise<void> {
    await fs.mkdir(this.packsDir, { recursive: true });
    for (const r of ['pinned', 'baseline'] as const) await fs.mkdir(join(this.dir, 'manifests', r), { recursive: true });
    await this.loadIndex();
    // Volume records are written like manifests: a crash leaves at most a `.tmp-` file.
    const volumesDir = join(this.dir, 'volumes');
    await fs.mkdir(volumesDir, { recursive: true });
    for (const name of await fs.readdir(volumesDir)) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      await fs.rm(join(volumesDir, name), { force: true });
      this.counters.cleanedTempFiles++;
    }
    const loaded = new Map<string, Manifest>();
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
          loaded.set(root, m);
        } catch (err) {
          this.warnings.push(`ignored manifest file ${join(mdir, name)}: ${(err as Error).message}`);
        }
      }
    }
    // Parsed already: keep the most recent ones (the likely delta bases).
    for (const root of this.recentManifestRoots(MANIFEST_CACHE).reverse()) this.cacheManifest(loaded.get(root)!);
    // Chunk files of a format-1 store, moved into packs (after the manifests, so that pinned
    // chunks are counted as such while they move).
    await this.migrateChunkFiles();
  }

  /** Replays packs/index.log into the index; cuts a torn tail; removes packs nothing points at. */
  private async loadIndex(): Promise<void> {
    const logPath = join(this.packsDir, LOG_NAME);
    let buf: Buffer;
    try {
      buf = await fs.readFile(logPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      buf = Buffer.alloc(0);
    }
    const onDisk = new Map<string, number>();
    for (const name of await fs.readdir(this.packsDir)) {
      const m = PACK_ID.exec(name);
      if (m) onDisk.set(m[1]!, (await fs.stat(join(this.packsDir, name))).size);
      else if (name.startsWith(TMP_PREFIX)) {
        await fs.rm(join(this.packsDir, name), { force: true });
        this.counters.cleanedTempFiles++;
      }
    }
    const { records, validBytes } = decodeIndexLog(buf);
    if (buf.length > 0 && validBytes === 0) {
      // The log is written whole (temp file + rename) before anything is appended, so a bad header
      // is damage, not a crash: refuse rather than treat every pack as unreferenced and delete it.
      throw new Error(`chunk index ${logPath} does not start with ${LOG_MAGIC.toString('latin1')}: damaged; move it away to start the store empty (its packs are then removed)`);
    }
    const where = new Map<string, { pack: string; offset: number; length: number }>();
    for (const r of records) {
      if (r.type === REC_ADD) {
        where.delete(r.hash);
        where.set(r.hash, { pack: r.pack, offset: r.offset, length: r.length });
      } else if (where.get(r.hash)?.pack === r.pack) where.delete(r.hash);
    }
    for (const [hash, w] of where) {
      const size = onDisk.get(w.pack);
      if (size === undefined) continue; // the pack was deleted (all of it dead) before its DEL records were
      if (w.offset + w.length > size) {
        this.warnings.push(`chunk ${hash} is recorded at ${w.pack}.pack:${w.offset}+${w.length}, past the pack's end (${size}); dropped`);
        continue;
      }
      let pack = this.packs.get(w.pack);
      if (!pack) this.packs.set(w.pack, (pack = { id: w.pack, path: join(this.packsDir, `${w.pack}.pack`), size, live: 0 }));
      pack.live += w.length;
      this.index.set(hash, { pack, offset: w.offset, length: w.length });
      this.bytes += w.length;
    }
    // Packs nothing durable points at: a group commit cut before its records, or a pack emptied.
    for (const id of onDisk.keys()) {
      if (this.packs.has(id)) continue;
      await fs.rm(join(this.packsDir, `${id}.pack`), { force: true });
      this.counters.removedPacks++;
    }
    if (buf.length === 0) {
      await this.writeNewLog([]); // a new store
    } else {
      this.logFd = await fdOpen(logPath, 'r+');
      this.logSize = validBytes;
      if (validBytes < buf.length) {
        // A torn tail: records of a group commit a crash cut; that commit was never acknowledged.
        this.counters.truncatedLogBytes += buf.length - validBytes;
        await fdTruncate(this.logFd, validBytes);
        await fdSync(this.logFd);
      }
      // Mostly dead records (many removals since the last rewrite): rewrite the log with the live ones.
      if (records.length > 2 * this.index.size + 4096) await this.rewriteLog();
    }
    await fsyncDir(this.packsDir);
  }

  /** Replaces the index log by one holding `records` (temp file, fsync, rename, directory fsync). */
  private async writeNewLog(records: LogRecord[]): Promise<void> {
    const buf = Buffer.alloc(LOG_MAGIC.length + records.length * REC_BYTES);
    LOG_MAGIC.copy(buf, 0);
    records.forEach((r, k) => encodeRecord(r, buf, LOG_MAGIC.length + k * REC_BYTES));
    const path = join(this.packsDir, LOG_NAME);
    if (this.logFd >= 0) await fdClose(this.logFd);
    this.logFd = -1;
    await writeFileDurable(path, buf);
    this.logFd = await fdOpen(path, 'r+');
    this.logSize = buf.length;
  }

  /** The index log rewritten with one ADD record per live chunk, in recency order. */
  private async rewriteLog(): Promise<void> {
    await this.writeNewLog([...this.index].map(([hash, l]) => ({ type: REC_ADD, pack: l.pack.id, offset: l.offset, length: l.length, hash })));
  }

  /** Moves the chunk files of a format-1 store (`chunks/<xx>/<sha256>`) into packs. */
  private async migrateChunkFiles(): Promise<void> {
    const chunksDir = join(this.dir, 'chunks');
    let subs: string[];
    try {
      subs = await fs.readdir(chunksDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const found: { path: string; hash: string; mtime: number }[] = [];
    for (const sub of subs) {
      const subDir = join(chunksDir, sub);
      if (!(await fs.stat(subDir)).isDirectory()) continue;
      for (const name of await fs.readdir(subDir)) {
        if (name.startsWith(TMP_PREFIX)) {
          await fs.rm(join(subDir, name), { force: true });
          this.counters.cleanedTempFiles++;
        } else if (SHA256_HEX.test(name)) found.push({ path: join(subDir, name), hash: name, mtime: (await fs.stat(join(subDir, name))).mtimeMs });
      }
    }
    // Oldest first, so that recency survives the move (format 1 kept it in mtimes).
    found.sort((a, b) => a.mtime - b.mtime);
    for (let k = 0; k < found.length; ) {
      const group: { path: string; hash: string; data: Buffer }[] = [];
      for (let bytes = 0; k < found.length && bytes < MIGRATE_GROUP_BYTES; k++) {
        const data = await fs.readFile(found[k]!.path);
        group.push({ ...found[k]!, data });
        bytes += data.length;
      }
      const results = await this.putMany(group);
      results.forEach((r, i) => {
        if (r === 'rejected') {
          this.counters.corruptChunks++;
          this.warnings.push(`chunk file ${group[i]!.path} does not hash to its name; dropped`);
        } else this.counters.migratedChunks++;
      });
      // Only now (their records durable) may the files go.
      await Promise.all(group.map((g) => fs.rm(g.path, { force: true })));
    }
    await fs.rm(chunksDir, { recursive: true, force: true });
    await fsyncDir(this.dir);
  }

  private addRefs(m: Manifest, r: Retention, delta: 1 | -1): void {
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
        const size = this.index.get(hash)?.length;
        if (size !== undefined) this.pinnedBytes += isPinned ? size : -size;
      }
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
   * Where a held chunk's bytes are on disk (a pack file, an offset and a length), or undefined.
   * For diagnostics and tests (e.g. to damage a chunk on purpose); the layout is not an interface.
   */
  locateChunk(hash: string): { path: string; offset: number; length: number } | undefined {
    const l = this.index.get(hash);
    return l && { path: l.pack.path, offset: l.offset, length: l.length };
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
    const loc = this.index.get(hash);
    if (loc === undefined) {
      this.counters.misses++;
      return undefined;
    }
    let data: Buffer;
    // Its own handle: a pack's cached fd may be closed (its pack emptied) while this read waits.
    let h: fs.FileHandle;
    try {
      h = await fs.open(loc.pack.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Its pack was emptied and deleted while we were opening it.
      this.counters.misses++;
      return undefined;
    }
    try {
      data = Buffer.allocUnsafe(loc.length);
      let got = 0;
      while (got < loc.length) {
        const { bytesRead } = await h.read(data, got, loc.length - got, loc.offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== loc.length) data = data.subarray(0, got);
    } finally {
      await h.close();
    }
    if (this.verifyOnRead || data.length !== loc.length) {
      // On the thread pool (WebCrypto), so that many reads hash in parallel.
      const actual = Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
      if (actual !== hash) {
        this.counters.corruptChunks++;
        await this.remove(hash);
        throw new ChunkHashMismatchError(hash, actual, 'read');
      }
    }
    this.counters.hits++;
    this.touch(hash);
    return data;
  }

  /** Marks a held chunk most recently used. (Recency lives in memory; after a restart, it is the index's order.) */
  private touch(hash: string): void {
    const l = this.index.get(hash);
    if (l && this.index.delete(hash)) this.index.set(hash, l);
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
      this.counters.rejectedPuts++;
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
        this.counters.rejectedPuts++;
        results.push('rejected');
      } else if (this.index.has(e.hash) || inGroup.has(e.hash) || this.inflight.has(e.hash)) {
        this.counters.duplicatePuts++;
        this.touch(e.hash);
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
        await this.makeRoom(f.data.length);
        reserved += f.data.length;
      }
      commit = this.enqueue(fresh, []);
      for (const f of fresh) this.inflight.set(f.hash, commit);
      const locs = await commit;
      fresh.forEach((f, k) => {
        const loc = locs[k]!;
        loc.pack.live += loc.length;
        this.index.set(f.hash, loc);
        this.bytes += loc.length;
        if (this.isPinned(f.hash)) this.pinnedBytes += loc.length;
        this.counters.puts++;
      });
      await Promise.all(others);
      return results;
    } finally {
      if (commit) for (const f of fresh) if (this.inflight.get(f.hash) === commit) this.inflight.delete(f.hash);
      this.reservedBytes -= reserved;
      for (const wake of this.roomWaiters.splice(0)) wake();
    }
  }

  /** Queues chunk bytes to append and DEL records to log; resolves with the chunks' locations once durable. */
  private enqueue(adds: WriteJob['adds'], dels: WriteJob['dels']): Promise<Loc[]> {
    return new Promise<Loc[]>((resolve, reject) => {
      this.writeQueue.push({ adds, dels, resolve, reject });
      if (!this.writing) void this.runWriter();
    });
  }

  /**
   * The one writer: takes every queued job at once (concurrent puts and removals are committed
   * together), appends their chunk bytes to the current pack and fdatasyncs it, then appends their
   * records to the index log and fdatasyncs that.
   */
  private async runWriter(): Promise<void> {
    this.writing = true;
    try {
      while (this.writeQueue.length) {
        const jobs = this.writeQueue.splice(0);
        try {
          const adds = jobs.flatMap((j) => j.adds);
          const addBytes = adds.reduce((s, a) => s + a.data.length, 0);
          const locs: Loc[] = [];
          const records: LogRecord[] = [];
          if (adds.length) {
            const { pack, fd } = await this.packFor(addBytes);
            let at = pack.size;
            for (const a of adds) {
              locs.push({ pack, offset: at, length: a.data.length });
              records.push({ type: REC_ADD, pack: pack.id, offset: at, length: a.data.length, hash: a.hash });
              at += a.data.length;
            }
            const { bytesWritten } = await fdWritev(fd, adds.map((a) => a.data), pack.size);
            if (bytesWritten !== addBytes) throw new Error(`short write to ${pack.path}: ${bytesWritten} of ${addBytes} bytes`);
            await fdDatasync(fd);
            pack.size = at;
          }
          for (const j of jobs) for (const d of j.dels) records.push({ type: REC_DEL, pack: d.pack, offset: 0, length: 0, hash: d.hash });
          const buf = Buffer.allocUnsafe(records.length * REC_BYTES);
          records.forEach((r, k) => encodeRecord(r, buf, k * REC_BYTES));
          const { bytesWritten } = await fdWrite(this.logFd, buf, 0, buf.length, this.logSize);
          if (bytesWritten !== buf.length) throw new Error(`short write to the chunk index log: ${bytesWritten} of ${buf.length} bytes`);
          await fdDatasync(this.logFd);
          this.logSize += buf.length;
          let k = 0;
          for (const j of jobs) {
            j.resolve(locs.slice(k, k + j.adds.length));
            k += j.adds.length;
          }
        } catch (err) {
          // Nothing of this commit is acknowledged; bytes written past pack.size / logSize are
          // overwritten by the next commit (or cut by the next open).
          for (const j of jobs) j.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** The pack to append `bytes` to: the current one, or a new one when it is full. */
  private async packFor(bytes: number): Promise<{ pack: Pack; fd: number }> {
    if (this.current && (this.current.pack.size === 0 || this.current.pack.size + bytes <= PACK_MAX_BYTES)) return this.current;
    if (this.current) await this.sealCurrent();
    const id = randomBytes(8).toString('hex');
    const path = join(this.packsDir, `${id}.pack`);
    const fd = await fdOpen(path, 'wx');
    // The pack's directory entry is durable before any record points into it.
    await fsyncDir(this.packsDir);
    const pack: Pack = { id, path, size: 0, live: 0 };
    this.packs.set(id, pack);
    this.current = { pack, fd };
    return this.current;
  }

  private async sealCurrent(): Promise<void> {
    const c = this.current!;
    this.current = undefined;
    await fdClose(c.fd);
    if (c.pack.live === 0) await this.dropPack(c.pack);
  }

  private closePackFd(p: Pack): void {
    if (p.fd === undefined) return;
    closeSync(p.fd);
    p.fd = undefined;
  }

  /** Deletes a pack nothing live is left in. Its ADD records are then ignored by open(). */
  private async dropPack(p: Pack): Promise<void> {
    if (this.packs.get(p.id) !== p) return;
    this.packs.delete(p.id);
    this.closePackFd(p);
    await fs.rm(p.path, { force: true });
    this.counters.removedPacks++;
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
        for (const [hash, loc] of this.index) {
          if (freed >= over) break;
          if (this.isPinned(hash)) continue;
          victims.push(hash);
          freed += loc.length;
          this.counters.evictedChunks++;
          this.counters.evictedBytes += loc.length;
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
      if (this.reservedBytes === 0 || incoming > this.maxBytes - this.pinnedBytes) {
        throw new ChunkStoreFullError(incoming, this.maxBytes, this.pinnedBytes);
      }
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Drops the chunks from the index at once; resolves once their DEL records are durable. */
  private async removeMany(hashes: readonly string[]): Promise<void> {
    const dels: WriteJob['dels'] = [];
    const emptied: Pack[] = [];
    for (const hash of hashes) {
      const loc = this.index.get(hash);
      if (loc === undefined) continue;
      this.index.delete(hash);
      this.bytes -= loc.length;
      if (this.isPinned(hash)) this.pinnedBytes -= loc.length;
      loc.pack.live -= loc.length;
      dels.push({ hash, pack: loc.pack.id });
      if (loc.pack.live === 0 && loc.pack !== this.current?.pack) emptied.push(loc.pack);
    }
    if (dels.length === 0) return;
    await this.enqueue([], dels);
    await Promise.all([...new Set(emptied)].filter((p) => p.live === 0).map((p) => this.dropPack(p)));
  }

  private remove(hash: string): Promise<void> {
    return this.removeMany([hash]);
  }

  /** Removes a chunk; returns whether it was held. A pinned manifest that needs it then lacks it. */
  async delete(hash: string): Promise<boolean> {
    checkHashName(hash);
    const held = this.index.has(hash);
    await this.remove(hash);
    return held;
  }

  /** Removes many chunks with one durable log append; returns how many were held. */
  async deleteMany(hashes: readonly string[]): Promise<number> {
    for (const h of hashes) checkHashName(h);
    const held = new Set(hashes.filter((h) => this.index.has(h))).size;
    await this.removeMany(hashes);
    return held;
  }

  /**
   * Reclaims the space of removed chunks: each sealed pack whose live bytes are under
   * PACK_MIN_LIVE of its size has its live chunks appended to the current pack (one group
   * commit, like any put) and is then deleted. A crash in between leaves both copies; the later
   * ADD record wins and the old pack is reclaimed again later.
   */
  async compact(): Promise<void> {
    while (this.compacting) await this.compacting;
    this.compacting = (async () => {
      for (const p of [...this.packs.values()]) {
        if (p === this.current?.pack || p.live >= p.size * PACK_MIN_LIVE) continue;
        if (p.live === 0) {
          await this.dropPack(p);
          continue;
        }
        const moving = [...this.index].filter(([, l]) => l.pack === p);
        const adds = moving.map(([hash, l]) => ({ hash, data: this.readAt(l) }));
        const locs = await this.enqueue(adds, []);
        const undo: WriteJob['dels'] = [];
        moving.forEach(([hash, old], k) => {
          const now = this.index.get(hash);
          const loc = locs[k]!;
          if (now === old) {
            // Same place in the recency order.
            this.index.set(hash, loc);
            old.pack.live -= old.length;
            loc.pack.live += loc.length;
          } else undo.push({ hash, pack: loc.pack.id }); // removed meanwhile: the copy is dead too
        });
        if (undo.length) await this.enqueue([], undo);
        if (p.live === 0) await this.dropPack(p);
        this.counters.compactedPacks++;
      }
    })();
    try {
      await this.compacting;
    } finally {
      this.compacting = undefined;
    }
  }

  /** A chunk's bytes as stored (not verified), read synchronously. */
  private readAt(l: Loc): Buffer {
    if (l.pack.fd === undefined) l.pack.fd = openSync(l.pack.path, 'r');
    const buf = Buffer.allocUnsafe(l.length);
    let got = 0;
    while (got < l.length) {
      const n = readSync(l.pack.fd, buf, got, l.length - got, l.offset + got);
      if (n === 0) break;
      got += n;
    }
    return got === l.length ? buf : buf.subarray(0, got);
  }

  /** Reads and verifies every held chunk; drops (and reports) those that no longer match their hash. */
  async scrub(): Promise<{ chunks: number; bytes: number; corrupt: string[] }> {
    const corrupt: string[] = [];
    let bytes = 0;
    const all = [...this.index];
    for (const [hash, l] of all) {
      const data = this.readAt(l);
      bytes += data.length;
      if (data.length !== l.length || oneShotHash('sha256', data, 'hex') !== hash) corrupt.push(hash);
    }
    this.counters.corruptChunks += corrupt.length;
    await this.removeMany(corrupt);
    return { chunks: all.length, bytes, corrupt };
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
    this.cacheManifest(m);
  }

  /**
   * A held manifest. The few most recently used are kept parsed in memory (MANIFEST_CACHE): a
   * sync reads the base manifest for the delta and again to assemble. Shared: treat as read-only.
   */
  async getManifest(rootHash: string): Promise<Manifest | undefined> {
    const r = this.manifests.get(rootHash);
    if (r === undefined) return undefined;
    const hit = this.parsed.get(rootHash);
    if (hit) {
      this.cacheManifest(hit);
      return hit;
    }
    const m = JSON.parse(await fs.readFile(this.manifestPath(rootHash, r), 'utf8')) as Manifest;
    if (this.manifests.has(rootHash)) this.cacheManifest(m);
    return m;
  }

  private cacheManifest(m: Manifest): void {
    this.parsed.delete(m.rootHash);
    this.parsed.set(m.rootHash, m);
    for (const root of this.parsed.keys()) {
      if (this.parsed.size <= MANIFEST_CACHE) break;
      this.parsed.delete(root);
    }
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
    this.parsed.delete(rootHash);
    this.addRefs(m, r, -1);
    return true;
  }

  /** Removes every chunk that no retained manifest (pinned or baseline) references, and reclaims their space. */
  async gc(): Promise<{ removedChunks: number; removedBytes: number }> {
    const victims: string[] = [];
    let removedBytes = 0;
    for (const [hash, loc] of this.index) {
      if (!this.refs.has(hash)) {
        victims.push(hash);
        removedBytes += loc.length;
      }
    }
    await this.removeMany(victims);
    await this.compact();
    return { removedChunks: victims.length, removedBytes };
  }

  /** One chunk's bytes for assemble(), read synchronously from its pack. */
  private readForAssemble(rootHash: string, ref: ChunkRef): Buffer {
    const loc = this.index.get(ref.hash);
    if (!loc) throw new MissingChunksError(rootHash, [ref.hash]);
    if (loc.length !== ref.length) throw new Error(`chunk ${ref.hash} at offset ${ref.offset} is ${loc.length} bytes in the store; the manifest says ${ref.length}`);
    let data: Buffer;
    try {
      data = this.readAt(loc);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingChunksError(rootHash, [ref.hash]);
      throw err;
    }
    if (data.length !== ref.length) throw new Error(`chunk ${ref.hash} at offset ${ref.offset}: its pack ${loc.pack.path} ends after ${data.length} of its ${ref.length} bytes`);
    return data;
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
    const early = new EarlySync(out);
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
            early.wrote(n);
            done += n;
            if (r.from === r.offset) figures.inPlaceBytes += n;
            else figures.movedBytes += n;
          }
        }
      }
      await writing;
      figures.storeBytes += await this.writeStoreChunks(rootHash, fromStore, out, early);
      await writing;
      bytes = m.totalBytes;
      figures.writeMs = performance.now() - t1;
      const t2 = performance.now();
      await early.settle();
      await out.sync();
      figures.syncMs = performance.now() - t2;
    } catch (err) {
      await writing.catch(() => undefined);
      await early.settle().catch(() => undefined);
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
  private async writeStoreChunks(rootHash: string, refs: readonly ChunkRef[], out: fs.FileHandle, early?: EarlySync): Promise<number> {
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
        early?.wrote(winBytes);
        bytes += winBytes;
        for (const w of win) {
          this.counters.hits++;
          this.touch(w.ref.hash);
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
    const early = new EarlySync(out);
    try {
      const t1 = performance.now();
      figures.copyMs = t1 - t0;
      // Moves first (in the order orderMovesInPlace gives, each run copied away from the bytes it
      // has yet to read), then the new chunks, some of which land where moved bytes were read.
      // Two windows in turn: one written (on the thread pool) while the next is read. Within a
      // run the write of a window never touches the bytes of the next window's read: windows
      // advance in the direction of the move, so a window's destination lies behind the next
      // one's source. Each run's writes end before the next run starts.
      const windows = [Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES), Buffer.allocUnsafe(ASSEMBLE_WINDOW_BYTES)];
      let flip = 0;
      let writing: Promise<unknown> = Promise.resolve();
      try {
        for (const r of moves) {
          const backwards = r.from < r.offset;
          for (let done = 0; done < r.length; ) {
            const n = Math.min(ASSEMBLE_WINDOW_BYTES, r.length - done);
            const at = backwards ? r.length - done - n : done;
            const buf = windows[flip++ & 1]!;
            let got = 0;
            while (got < n) {
              const k = readSync(out.fd, buf, got, n - got, r.from + at + got);
              if (k === 0) throw new Error(`${path} ended at ${r.from + at + got}; its basis manifest says it is longer`);
              got += k;
            }
            await writing;
            writing = out.write(buf, 0, n, r.offset + at);
            early.wrote(n);
            done += n;
            figures.movedBytes += n;
          }
          await writing;
          await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        await writing.catch(() => undefined);
      }
      figures.storeBytes = await this.writeStoreChunks(m.rootHash, changed, out, early);
      await out.truncate(m.totalBytes);
      figures.inPlaceBytes = m.totalBytes - figures.storeBytes - figures.movedBytes;
      const t2 = performance.now();
      figures.writeMs = t2 - t1;
      await early.settle();
      await out.sync();
      figures.syncMs = performance.now() - t2;
    } finally {
      await early.settle().catch(() => undefined);
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
    let packBytes = 0;
    for (const p of this.packs.values()) packBytes += p.size;
    return { chunks: this.index.size, bytes: this.bytes, pinnedBytes: this.pinnedBytes, manifests: this.manifests.size, ...this.counters, packs: this.packs.size, packBytes };
  }
}
