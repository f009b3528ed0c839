/**
 * Patches a directory volume in place from the image it holds (per its record, volume-journal.ts)
 * to a new image, writing only what differs: the cut-over's write is then proportional to what
 * changed since the last round, not to the volume.
 *
 * Which entries are unchanged, and why that is safe:
 * - Entries are found by walking the new image's tar headers. An entry at offset p is the old
 *   image's entry at q when the new chunks covering [p, p + len) are, one for one, the old
 *   manifest's chunks at the same offsets shifted by q - p (equal sha256, equal length): then the
 *   new entry's bytes (headers, data, padding) are the old entry's bytes, so it names the same
 *   path, type, mode and content. Such an entry is neither read nor written, and its span is
 *   skipped (the next header is at p + len).
 * - Any other file with a same-path file in the old image is compared range by range: a chunk of
 *   its data that equals the old manifest's chunk at the same offset within the old file is
 *   unchanged; the remaining ranges are read from the store and compared with the file on disk,
 *   and only the bytes that differ are written. The file on disk is trusted to be the old entry's
 *   bytes only because its identity (inode, size, mtime, ctime, mode) is still the one recorded
 *   right after it was written; a mismatch anywhere aborts the patch for a whole extraction.
 * - New files (or a changed type) are written whole to staging; names gone from the image are
 *   removed; directories are made with the mode a tar extraction gives them.
 *
 * All writes go to staging first and become visible only through the journal (see
 * volume-journal.ts): a crash leaves the old image or, once committed, the new one.
 */
import { hash as oneShotHash } from 'node:crypto';
import { closeSync, futimesSync, mkdirSync, openSync, readSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ChunkRef, Manifest } from '../../core/manifest';
import type { VolumeExtractFigures } from '../../core/migration';
import type { ChunkStore } from '../store/chunk-store';
import { MissingChunksError } from '../store/errors';
import { fsyncAllAsync, fsyncPathAsync, writeFileUnsynced } from '../durable-files';
import { readEntryAt, UnsupportedImageError, type TarEntry } from './tar-walk';
import { applyJournal, journalPath, readImageRecord, recordMismatch, stagingPath, writeImageRecord, type ApplyHook, type Identity, type PatchJournal, type VolumeImageRecord } from './volume-journal';

/** What the extraction wrote: proportional to the change (patch) or to the volume (full). */
export type ExtractFigures = VolumeExtractFigures;

export interface PatchHooks {
  /** Everything staged and fsynced, the journal not yet committed (its temporary file may be there). */
  beforeCommit?: () => Promise<void> | void;
  /** After each applied operation. */
  afterOp?: ApplyHook;
}

/** Blocks compared against the file on disk: a differing one is written whole. */
const COMPARE_BLOCK = 4096;
/** Ranges are read from the store and compared in pieces of at most this. */
const PIECE = 4 << 20;

/**
 * Reads byte ranges of an image from the store, chunk by chunk, with a small cache. Each chunk is
 * read synchronously through one cached descriptor per pack file and checked against its sha256
 * (one-shot), as volume-extract.ts's chunksOf does; a chunk that fails the check, or moved
 * meanwhile, is read again through the store, which checks it again, evicts it and throws if it
 * is bad. (The store's own get() opens the pack and hashes on the thread pool for every chunk:
 * a few hundred µs a chunk, most of a small patch's time.) close() releases the descriptors.
 */
class ImageReader {
  private readonly cache = new Map<number, Buffer>();
  private readonly fds = new Map<string, number>();
  constructor(
    private readonly store: ChunkStore,
    readonly m: Manifest,
  ) {}

  chunkAt(off: number): number {
    const cs = this.m.chunks;
    let lo = 0;
    let hi = cs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cs[mid]!.offset <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The chunk's bytes from its pack, if they are there and hash to its name. */
  private readDirect(hash: string, length: number): Buffer | undefined {
    const at = this.store.locateChunk(hash);
    if (!at || at.length !== length) return undefined;
    try {
      let fd = this.fds.get(at.path);
      if (fd === undefined) this.fds.set(at.path, (fd = openSync(at.path, 'r')));
      const buf = readFully(fd, length, at.offset);
      if (buf.length !== length) return undefined;
      return !this.store.verifyOnRead || oneShotHash('sha256', buf, 'hex') === hash ? buf : undefined;
    } catch {
      return undefined;
    }
  }

  private async chunk(k: number): Promise<Buffer> {
    const hit = this.cache.get(k);
    if (hit) return hit;
    const c = this.m.chunks[k]!;
    const data = this.readDirect(c.hash, c.length) ?? (await this.store.get(c.hash));
    if (!data) throw new MissingChunksError(this.m.rootHash, [c.hash]);
    if (this.cache.size >= 64) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(k, data);
    return data;
  }

  async read(off: number, len: number): Promise<Buffer> {
    if (off + len > this.m.totalBytes) throw new UnsupportedImageError(`the image ends at ${this.m.totalBytes}, before ${off + len}`);
    const out = Buffer.allocUnsafe(len);
    let k = this.chunkAt(off);
    for (let got = 0; got < len; k++) {
      const c = this.m.chunks[k]!;
      const data = await this.chunk(k);
      const from = off + got - c.offset;
      const n = Math.min(len - got, c.length - from);
      data.copy(out, got, from, from + n);
      got += n;
    }
    return out;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * The old image's chunks by offset, without a Map of every chunk: the manifest lists them in
 * offset order, so a lookup is a binary search, or one step from the previous lookup (the patch
 * looks chunks up in order, so almost every lookup is that step).
 */
class OldChunks {
  private readonly offsets: Float64Array;
  private last = 0;
  constructor(readonly chunks: readonly ChunkRef[]) {
    this.offsets = new Float64Array(chunks.length);
    for (let i = 0; i < chunks.length; i++) this.offsets[i] = chunks[i]!.offset;
  }

  /** The old chunk starting exactly at `off`, if one does. */
  at(off: number): ChunkRef | undefined {
    const o = this.offsets;
    let i = this.last;
    if (!(o[i] === off)) {
      i++;
      if (!(o[i] === off)) {
        let lo = 0;
        let hi = o.length - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (o[mid]! < off) lo = mid + 1;
          else hi = mid - 1;
        }
        if (o[lo] !== off) return undefined;
        i = lo;
      }
    }
    this.last = i;
    return this.chunks[i];
  }

  /** Index of the old chunk that holds byte `off`. */
  holding(off: number): number {
    const o = this.offsets;
    let lo = 0;
    let hi = o.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (o[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

function readFully(fd: number, len: number, pos: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

function writeAll(fd: number, buf: Buffer, pos?: number): void {
  for (let w = 0; w < buf.length; ) w += writeSync(fd, buf, w, buf.length - w, pos === undefined ? null : pos + w);
}

/** The mode a tar extraction gives a directory it creates (node-tar: mode | 0o700, then the umask). */
export function extractedDirMode(mode: number): number {
  return (mode | 0o700) & ~process.umask() & 0o7777;
}

/** The mode a tar extraction gives a file it creates (the header's mode, then the umask). */
function extractedFileMode(mode: number): number {
  return mode & ~process.umask() & 0o7777;
}

export type PatchOutcome = { figures: ExtractFigures } | { fallback: string };

/**
 * Patches `volume` to `manifest` if the volume holds a recorded image whose manifest the store
 * still has; otherwise (or on anything unexpected in either image) returns why not, having
 * changed nothing, so the caller extracts the whole image. Call recoverVolume first.
 */
export async function patchVolume(store: ChunkStore, manifest: Manifest, volume: string, opts: { onBatch?: () => void; hooks?: PatchHooks } = {}): Promise<PatchOutcome> {
  const t0 = performance.now();
  const rec = readImageRecord(volume);
  if (!rec) return { fallback: 'no record of the image this volume holds' };
  const old = rec.root === manifest.rootHash ? manifest : await store.getManifest(rec.root);
  if (!old) return { fallback: `the manifest of the image it holds (${rec.root.slice(0, 12)}) is no longer in the store` };
  const mismatch = recordMismatch(volume, rec);
  if (mismatch) return { fallback: mismatch };

  // The old image's chunks by offset, and where an old entry may start for a given new chunk: the
  // chunks holding an old entry's first byte, by hash (one per entry, not one per chunk).
  const oldAt = new OldChunks(old.chunks);
  const oldOffsets = new Map<string, number[]>();
  const oldEntryAt = new Map<number, TarEntry>();
  const oldByPath = new Map<string, TarEntry>();
  for (const e of rec.entries) {
    oldEntryAt.set(e.off, e);
    oldByPath.set(e.path, e);
    const c = old.chunks[oldAt.holding(e.off)];
    if (!c) continue;
    const list = oldOffsets.get(c.hash);
    if (!list) oldOffsets.set(c.hash, [c.offset]);
    else if (!list.includes(c.offset)) list.push(c.offset);
  }
  const reader = new ImageReader(store, manifest);
  const cs = manifest.chunks;
  /** Whether the new chunks over [p, p + len) are the old ones over [p + d, p + len + d). */
  const sameChunks = (p: number, len: number, d: number): boolean => {
    if (p + len > manifest.totalBytes) return false;
    for (let k = reader.chunkAt(p); k < cs.length && cs[k]!.offset < p + len; k++) {
      const o = oldAt.at(cs[k]!.offset + d);
      if (!o || o.hash !== cs[k]!.hash || o.length !== cs[k]!.length) return false;
    }
    return true;
  };

  const figures: ExtractFigures = { method: 'patch', bytesWritten: 0, filesWritten: 0, filesKept: 0, bytesKept: 0, filesRemoved: 0, dirsWritten: 0, durationMs: 0 };
  const staging = stagingPath(volume);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  const journal: PatchJournal = { version: 1, root: manifest.rootHash, remove: [], dirs: [], files: [], patches: [], entries: [] };
  // The changed ranges of every patched file go to one blob (one fsync, not one per file); new
  // files are written to staging as they come and fsynced together, on the thread pool, before
  // the commit.
  const blob = new Blob(join(staging, BLOB));
  const wholes: string[] = [];
  let staged = 0;
  let shift = 0;
  let beat = 0;
  try {
    for (let p = 0; p < manifest.totalBytes; ) {
      if (++beat % 256 === 0) opts.onBatch?.();
      // An entry whose bytes are provably the old one's: kept as it is on disk, its data never read.
      const k = reader.chunkAt(p);
      const shifts = [shift, ...(oldOffsets.get(cs[k]!.hash) ?? []).map((o) => o - cs[k]!.offset)];
      let same: TarEntry | undefined;
      for (const d of shifts) {
        const e = oldEntryAt.get(p + d);
        if (e && sameChunks(p, e.len, d)) {
          same = { ...e, off: p, dataOff: e.dataOff - d };
          shift = d;
          break;
        }
      }
      if (same) {
        journal.entries.push(stripId(same));
        if (same.type !== 'dir') {
          figures.filesKept++;
          figures.bytesKept += same.size;
        }
        p += same.len;
        continue;
      }
      const e = await readEntryAt((off, len) => reader.read(off, len), p);
      if (!e) break;
      journal.entries.push(e);
      p = e.off + e.len;
      const was = oldByPath.get(e.path);
      if (e.type === 'dir') {
        if (was?.type === 'dir' && was.mode === e.mode) continue;
        journal.dirs.push({ path: e.path, mode: extractedDirMode(e.mode) });
        figures.dirsWritten++;
      } else if (e.type === 'symlink') {
        if (was?.type === 'symlink' && was.linkpath === e.linkpath) {
          figures.filesKept++;
          continue;
        }
        const name = `s${staged++}`;
        symlinkSync(e.linkpath ?? '', join(staging, name));
        journal.files.push({ staged: name, path: e.path });
        figures.filesWritten++;
      } else if (was?.type === 'file') {
        const patch = await diffFile(reader, e, was, oldAt, join(volume, e.path), blob, opts.onBatch);
        if (patch.writes.length === 0 && e.size === was.size && e.mode === was.mode && e.mtimeMs === was.mtimeMs) {
          figures.filesKept++;
          figures.bytesKept += e.size;
          continue;
        }
        journal.patches.push({ path: e.path, blob: BLOB, writes: patch.writes, size: e.size, mode: extractedFileMode(e.mode), mtimeMs: e.mtimeMs });
        figures.filesWritten++;
        figures.bytesWritten += patch.bytes;
        figures.bytesKept += e.size - patch.bytes;
      } else {
        const name = `f${staged++}`;
        await stageWhole(reader, e, join(staging, name), opts.onBatch);
        wholes.push(join(staging, name));
        journal.files.push({ staged: name, path: e.path });
        figures.filesWritten++;
        figures.bytesWritten += e.size;
      }
    }
    const problem = checkTree(journal.entries);
    if (problem) {
      rmSync(staging, { recursive: true, force: true });
      return { fallback: problem };
    }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    if (err instanceof UnsupportedImageError) return { fallback: err.message };
    throw err;
  } finally {
    blob.close();
    reader.close();
  }
  const now = new Set(journal.entries.map((e) => e.path));
  for (const e of rec.entries) {
    if (now.has(e.path)) continue;
    journal.remove.push(e.path);
    if (e.type !== 'dir') figures.filesRemoved++;
  }
  // Deepest first (a removed directory's contents are removed with it anyway).
  journal.remove.sort((a, b) => b.length - a.length);

  if (journal.remove.length + journal.dirs.length + journal.files.length + journal.patches.length === 0) {
    // Nothing on disk changes: only which image (and which offsets) the record names.
    rmSync(staging, { recursive: true, force: true });
    writeImageRecord(volume, manifest.rootHash, journal.entries, keptIdentities(rec, journal));
    figures.durationMs = performance.now() - t0;
    return { figures };
  }
  // Durable before the commit, together (one round of fsyncs on the thread pool): the blob, the
  // new files, staging's names (new files and links) when there are any, and the journal's
  // temporary file.
  const steps: NonNullable<ExtractFigures['stepsMs']> = (figures.stepsMs = {});
  const at = () => Math.round(performance.now() - t0);
  steps.compared = at();
  const journalTmp = writeFileUnsynced(journalPath(volume), JSON.stringify(journal));
  const stagedFiles = [...(blob.size ? [blob.path] : []), ...wholes];
  await fsyncAllAsync([...stagedFiles, ...(stagedFiles.length + journal.files.length > 0 ? [staging] : []), journalTmp]);
  steps.staged = at();
  await opts.hooks?.beforeCommit?.();
  // The commit point: the journal renamed into place, durable once its directory is fsynced (on
  // the thread pool: the agent's event loop serves other transfers and fronts meanwhile).
  // From here on, recovery finishes the patch.
  renameSync(journalTmp, journalPath(volume));
  await fsyncPathAsync(dirname(volume));
  steps.committed = at();
  await applyJournal(volume, journal, opts.hooks?.afterOp, keptIdentities(rec, journal), () => (steps.applied = at()));
  steps.durable = at();
  figures.durationMs = performance.now() - t0;
  return { figures };
}

function stripId(e: TarEntry & { id?: unknown }): TarEntry {
  const { id: _id, ...rest } = e;
  return rest;
}

/** Every entry's parent is a directory of the same image, and no path appears twice: nothing is written through a link or outside the volume. */
function checkTree(entries: readonly TarEntry[]): string | undefined {
  const dirs = new Set<string>();
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.path)) return `the image names ${e.path} twice`;
    seen.add(e.path);
    const parent = dirname(e.path);
    if (parent !== '.' && !dirs.has(parent)) return `the image has ${e.path} before (or without) its directory ${parent}`;
    if (e.type === 'dir') dirs.add(e.path);
  }
  return undefined;
}

/** Writes a new file whole into staging (mode and mtime as tar extraction sets them); the caller fsyncs it before the commit. */
async function stageWhole(reader: ImageReader, e: TarEntry, to: string, onBatch?: () => void): Promise<void> {
  const fd = openSync(to, 'wx', e.mode & 0o7777);
  try {
    for (let at = 0; at < e.size; at += PIECE) {
      writeAll(fd, await reader.read(e.dataOff + at, Math.min(PIECE, e.size - at)));
      onBatch?.();
    }
    futimesSync(fd, new Date(), new Date(e.mtimeMs));
  } finally {
    closeSync(fd);
  }
}

/**
 * The byte ranges of file `e` (new image) that differ from the file on disk (the old image's `was`),
 * appended in order to the patch's blob (fsynced by the caller, with the others).
 */
async function diffFile(
  reader: ImageReader,
  e: TarEntry,
  was: TarEntry,
  oldAt: OldChunks,
  onDisk: string,
  blob: Blob,
  onBatch?: () => void,
): Promise<{ writes: [number, number, number][]; bytes: number }> {
  const cs = reader.m.chunks;
  // Ranges (relative to the file's data) not proven unchanged by a chunk at the same place in the old file.
  const unproven: [number, number][] = [];
  const end = e.dataOff + e.size;
  for (let k = e.size ? reader.chunkAt(e.dataOff) : cs.length; k < cs.length && cs[k]!.offset < end; k++) {
    const c = cs[k]!;
    const a = Math.max(c.offset, e.dataOff) - e.dataOff;
    const b = Math.min(c.offset + c.length, end) - e.dataOff;
    const o = oldAt.at(c.offset - e.dataOff + was.dataOff);
    if (b <= was.size && o && o.hash === c.hash && o.length === c.length) continue;
    const last = unproven.at(-1);
    if (last && last[1] === a) last[1] = b;
    else unproven.push([a, b]);
  }
  const writes: [number, number, number][] = [];
  let bytes = 0;
  if (unproven.length === 0) return { writes, bytes };
  const disk = openSync(onDisk, 'r');
  try {
    for (const [a, b] of unproven) {
      for (let at = a; at < b; at += PIECE) {
        const n = Math.min(PIECE, b - at);
        onBatch?.();
        const fresh = await reader.read(e.dataOff + at, n);
        const cur = at < was.size ? readFully(disk, Math.min(n, was.size - at), at) : Buffer.alloc(0);
        for (let i = 0; i < n; ) {
          const j = Math.min(n, i - ((at + i) % COMPARE_BLOCK) + COMPARE_BLOCK);
          if (j > cur.length || !fresh.subarray(i, j).equals(cur.subarray(i, j))) {
            const last = writes.at(-1);
            if (last && last[0] + last[1] === at + i) last[1] += j - i;
            else writes.push([at + i, j - i, blob.size]);
            blob.append(fresh.subarray(i, j));
            bytes += j - i;
          }
          i = j;
        }
      }
    }
  } finally {
    closeSync(disk);
  }
  return { writes, bytes };
}

/** Name of the blob, in staging, that holds the changed ranges of every patched file. */
const BLOB = 'ranges.blob';

/** The patch's blob: appended to as files are compared, fsynced once (by the caller). Created at the first append. */
class Blob {
  size = 0;
  private fd: number | undefined;
  constructor(readonly path: string) {}

  append(buf: Buffer): void {
    this.fd ??= openSync(this.path, 'wx');
    writeAll(this.fd, buf, this.size);
    this.size += buf.length;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * The identities the record may keep from the old one: files the patch leaves alone (not removed,
 * renamed into place or patched) were checked against the old record at the patch's start, and
 * nothing of the patch changes them. Directories are looked at again (a name added or removed
 * moves their times). A file something else wrote meanwhile then no longer matches the record,
 * and the next patch refuses it, as it would have.
 */
function keptIdentities(rec: VolumeImageRecord, j: PatchJournal): Map<string, Identity> {
  const touched = new Set<string>([...j.remove, ...j.files.map((f) => f.path), ...j.patches.map((p) => p.path)]);
  const kept = new Map<string, Identity>();
  for (const e of rec.entries) if (e.type !== 'dir' && !touched.has(e.path)) kept.set(e.path, e.id);
  return kept;
}
