/**
 * What a target keeps beside a directory volume so that the next round can patch it in place
 * (volume-patch.ts), and the redo journal that makes a patch all or nothing.
 *
 * Beside `<volume>` (same directory, so same filesystem: renames are atomic):
 * - `<volume>.image.json`: the image the volume holds (its root hash and its tar entries, where
 *   each lies in the image), with every entry's identity (inode, size, mtime, ctime, mode) taken
 *   right after it was written. Written last, after the volume is complete and durable; removed
 *   before a whole extraction swaps the volume. A patch trusts a file's bytes only while the file
 *   is still exactly what was written (identities equal), and a directory's listing only while
 *   the directory is (adding or removing a name changes its mtime and ctime).
 * - `<volume>.patch-staging/`: the new files and the changed byte ranges of a patch in progress.
 * - `<volume>.patch-journal.json`: the patch's operations. Written (and fsynced, with its
 *   directory) only once everything staged is durable: that write is the commit point.
 *
 * Recovery (recoverVolume, run on agent start and before every extraction): a journal means the
 * patch committed, so it is applied again, every operation idempotent, and the volume is the new
 * image; staging without a journal means it never committed, so staging is dropped and the volume
 * is the old image, untouched. Never a mix.
 */
import { closeSync, existsSync, ftruncateSync, futimesSync, fchmodSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, chmodSync, unlinkSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncAllAsync, fsyncPath, fsyncPathAsync, TMP_PREFIX, writeFileDurable, writeFileDurableAsync, writeFileUnsynced } from '../durable-files';
import type { TarEntry } from './tar-walk';

/** A file's identity right after fedflow wrote it: any later write, rename or chmod changes it. */
export interface Identity {
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  mode: number;
}

export interface VolumeImageRecord {
  version: 1;
  root: string;
  volume: Identity;
  entries: (TarEntry & { id: Identity })[];
}

/** A patch's operations, applied in this order (see applyJournal). */
export interface PatchJournal {
  version: 1;
  root: string;
  /** Removed whole (gone from the new image). */
  remove: string[];
  /** Created (or made so) as directories with this mode, parents first. */
  dirs: { path: string; mode: number }[];
  /** Whole files and links staged as `<staging>/<staged>`, renamed into place. */
  files: { staged: string; path: string }[];
  /** Files updated in place: byte ranges from `<staging>/<blob>`, then size, mode and mtime. */
  patches: { path: string; blob: string; writes: [fileOff: number, len: number, blobOff: number][]; size: number; mode: number; mtimeMs: number }[];
  /** The new image's entries, for the record written after the apply. */
  entries: TarEntry[];
}

export const recordPath = (volume: string) => `${volume}.image.json`;
export const journalPath = (volume: string) => `${volume}.patch-journal.json`;
export const stagingPath = (volume: string) => `${volume}.patch-staging`;

function identity(path: string): Identity | undefined {
  try {
    const st = lstatSync(path, { bigint: true });
    return { ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), mode: Number(st.mode) };
  } catch {
    return undefined;
  }
}

function sameIdentity(a: Identity | undefined, b: Identity): boolean {
  return !!a && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.mode === b.mode;
}

export function readImageRecord(volume: string): VolumeImageRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(recordPath(volume), 'utf8')) as VolumeImageRecord;
    return rec.version === 1 && typeof rec.root === 'string' && Array.isArray(rec.entries) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Why `volume` is not exactly what `rec` says was written (undefined when it is). One lstat per entry. */
export function recordMismatch(volume: string, rec: VolumeImageRecord): string | undefined {
  if (!sameIdentity(identity(volume), rec.volume)) return `${volume} changed since the image ${rec.root.slice(0, 12)} was written there`;
  for (const e of rec.entries) {
    if (!sameIdentity(identity(join(volume, e.path)), e.id)) return `${join(volume, e.path)} changed since it was written (image ${rec.root.slice(0, 12)})`;
  }
  return undefined;
}

/**
 * Records that `volume` now holds the image `root` with these entries (their identities taken
 * now). `kept`: identities of files (not directories) known to be unchanged since they were last
 * checked against a record, by path; those are not looked at again (a patch passes the files it
 * left alone: one lstat fewer per unchanged file).
 */
export function writeImageRecord(volume: string, root: string, entries: readonly TarEntry[], kept?: ReadonlyMap<string, Identity>): void {
  writeFileDurable(recordPath(volume), imageRecordJson(volume, root, entries, kept));
}

/** writeImageRecord with its writes and fsyncs on the thread pool (a full extraction's, after a big write). */
export async function writeImageRecordAsync(volume: string, root: string, entries: readonly TarEntry[]): Promise<void> {
  await writeFileDurableAsync(recordPath(volume), imageRecordJson(volume, root, entries));
}

/** The record of `volume` holding `root` (writeImageRecord's content), identities taken now. */
function imageRecordJson(volume: string, root: string, entries: readonly TarEntry[], kept?: ReadonlyMap<string, Identity>): string {
  const vol = identity(volume);
  if (!vol) throw new Error(`cannot record the image of ${volume}: it is gone`);
  const rec: VolumeImageRecord = {
    version: 1,
    root,
    volume: vol,
    entries: entries.map((e) => {
      const id = (e.type !== 'dir' ? kept?.get(e.path) : undefined) ?? identity(join(volume, e.path));
      if (!id) throw new Error(`cannot record the image of ${volume}: ${e.path} is missing`);
      return { ...e, id };
    }),
  };
  return JSON.stringify(rec);
}

/** Forgets what `volume` holds (before it is replaced some other way): the next round extracts it whole. */
export function removeImageRecord(volume: string): void {
  if (!existsSync(recordPath(volume))) return;
  rmSync(recordPath(volume), { force: true });
  fsyncPath(dirname(volume));
}

/** removeImageRecord with its directory fsync on the thread pool. */
export async function removeImageRecordAsync(volume: string): Promise<void> {
  if (!existsSync(recordPath(volume))) return;
  await rm(recordPath(volume), { force: true });
  await fsyncPathAsync(dirname(volume));
}

function rmQuiet(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch (err) {
    // A removed path under one that is a file now (an earlier apply replaced the directory): gone already.
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
  }
}

/** Test hook: called after each operation of an apply (the crash test pauses here to be killed). */
export type ApplyHook = (done: number) => Promise<void> | void;

/**
 * Applies a committed journal to `volume`. Every step can run again after a crash at any point:
 * removals of names the new image does not have; directories made (or re-moded) if not already;
 * a staged file renamed only while it is still in staging (once renamed, it is in place); byte
 * ranges written again from staging. Then everything touched is fsynced, the new record written,
 * and only then the journal removed (with its directory fsynced) and staging dropped.
 */
export async function applyJournal(volume: string, j: PatchJournal, hook?: ApplyHook, kept?: ReadonlyMap<string, Identity>, onApplied?: () => void): Promise<void> {
  const staging = stagingPath(volume);
  const touched = new Set<string>([volume]);
  let done = 0;
  const step = async () => {
    if (hook) await hook(++done);
  };
  for (const p of j.remove) {
    rmQuiet(join(volume, p));
    touched.add(dirname(join(volume, p)));
    await step();
  }
  for (const d of j.dirs) {
    const abs = join(volume, d.path);
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      st = undefined;
    }
    if (st && !st.isDirectory()) unlinkSync(abs);
    if (!st || !st.isDirectory()) mkdirSync(abs, { mode: d.mode });
    chmodSync(abs, d.mode);
    touched.add(abs).add(dirname(abs));
    await step();
  }
  for (const f of j.files) {
    const from = join(staging, f.staged);
    const to = join(volume, f.path);
    if (existsSync(from) || isSymlink(from)) {
      if (isDir(to)) rmSync(to, { recursive: true, force: true });
      renameSync(from, to);
    }
    touched.add(dirname(to));
    await step();
  }
  for (const p of j.patches) {
    const abs = join(volume, p.path);
    const blob = openSync(join(staging, p.blob), 'r');
    const fd = openSync(abs, 'r+');
    try {
      for (const [fileOff, len, blobOff] of p.writes) {
        const buf = Buffer.allocUnsafe(len);
        let got = 0;
        while (got < len) {
          const n = readSync(blob, buf, got, len - got, blobOff + got);
          if (n === 0) throw new Error(`staged blob ${p.blob} of ${abs} is short (${blobOff + got})`);
          got += n;
        }
        for (let w = 0; w < len; ) w += writeSync(fd, buf, w, len - w, fileOff + w);
      }
      ftruncateSync(fd, p.size);
      fchmodSync(fd, p.mode);
      futimesSync(fd, new Date(), new Date(p.mtimeMs));
    } finally {
      closeSync(fd);
      closeSync(blob);
    }
    await step();
  }
  // The new record (identities as written; an fsync does not move them) to its temporary file,
  // then the patched files, every touched directory and that file fsynced together on the thread
  // pool (the filesystem commits them at once): all durable before the record is renamed into
  // place. Then the journal goes, and one fsync of the directory makes both names durable. A
  // crash before that fsync leaves the journal (applied again) or, the journal's removal durable
  // and the rename not, the old record, which no longer matches the volume: the next round
  // extracts it whole, never trusting a record that is not the volume's.
  onApplied?.();
  const recTmp = writeFileUnsynced(recordPath(volume), imageRecordJson(volume, j.root, j.entries, kept));
  await fsyncAllAsync([...j.patches.map((p) => join(volume, p.path)), ...[...touched].filter((d) => existsSync(d)), recTmp]);
  renameSync(recTmp, recordPath(volume));
  rmSync(journalPath(volume), { force: true });
  await fsyncPathAsync(dirname(volume));
  await rm(staging, { recursive: true, force: true });
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

export type Recovered = { volume: string; outcome: 'redone' | 'discarded' | 'forgotten'; detail?: string };

/**
 * One writer per volume in this process: `fn` runs after every earlier holder of `volume`'s lock has
 * finished. An attempt of a pull that the server gave up on may still be writing the volume when
 * its retry starts (activities/sync.ts stops it, but waits only so long); its extraction, patch or
 * recovery and the retry's must not interleave (one could remove the other's journal and staging
 * between its commit and its apply). `onWait` is called every second while waiting (a heartbeat).
 */
export async function withVolumeLock<T>(volume: string, fn: () => Promise<T>, onWait?: () => void): Promise<T> {
  const before = volumeLocks.get(volume) ?? Promise.resolve();
  let release!: () => void;
  const mine = before.then(() => new Promise<void>((r) => (release = r)));
  volumeLocks.set(volume, mine);
  const beat = onWait ? setInterval(onWait, 1000) : undefined;
  try {
    await before;
  } finally {
    clearInterval(beat);
  }
  try {
    return await fn();
  } finally {
    release();
    if (volumeLocks.get(volume) === mine) volumeLocks.delete(volume);
  }
}
const volumeLocks = new Map<string, Promise<void>>();

/**
 * Brings `volume` back to a whole image after a crash: a committed patch is applied again (new
 * image), an uncommitted one dropped (old image). A journal that cannot be applied (unreadable,
 * or its staging gone) is not guessed at: the record is removed too, so the next extraction of
 * this volume is a whole one. Returns what it did, or undefined when there was nothing to do.
 * Takes the volume's lock (withVolumeLock); an extraction, which holds it, calls recoverVolumeLocked.
 */
export function recoverVolume(volume: string): Promise<Recovered | undefined> {
  return withVolumeLock(volume, () => recoverVolumeLocked(volume));
}

/** recoverVolume for a caller that holds the volume's lock. */
export async function recoverVolumeLocked(volume: string): Promise<Recovered | undefined> {
  const parent = dirname(volume);
  const jpath = journalPath(volume);
  // writeFileDurable's temporary files: a journal not yet committed, a record not yet in place.
  if (existsSync(parent)) {
    for (const n of readdirSync(parent)) {
      // Also tempPathBeside's `.tmp-<name>-<hex>` (writeImageRecordAsync's).
      if (n.startsWith(`${basename(jpath)}.tmp-`) || n.startsWith(`${basename(recordPath(volume))}.tmp-`) || n.startsWith(`${TMP_PREFIX}${basename(recordPath(volume))}-`)) rmSync(join(parent, n), { force: true });
    }
  }
  if (existsSync(jpath)) {
    let j: PatchJournal | undefined;
    try {
      j = JSON.parse(readFileSync(jpath, 'utf8')) as PatchJournal;
    } catch {
      j = undefined;
    }
    if (!j || j.version !== 1 || !existsSync(stagingPath(volume))) {
      removeImageRecord(volume);
      rmSync(jpath, { force: true });
      rmSync(stagingPath(volume), { recursive: true, force: true });
      fsyncPath(parent);
      return { volume, outcome: 'forgotten', detail: j ? 'its staging is gone' : 'the journal is unreadable' };
    }
    await applyJournal(volume, j);
    return { volume, outcome: 'redone' };
  }
  if (existsSync(stagingPath(volume))) {
    rmSync(stagingPath(volume), { recursive: true, force: true });
    return { volume, outcome: 'discarded' };
  }
  return undefined;
}

/** recoverVolume for every volume in `volumesDir` that has a journal or staging beside it (agent start). */
export async function recoverVolumes(volumesDir: string): Promise<Recovered[]> {
  if (!existsSync(volumesDir)) return [];
  const volumes = new Set<string>();
  for (const n of readdirSync(volumesDir)) {
    for (const suffix of ['.patch-journal.json', '.patch-staging']) if (n.endsWith(suffix)) volumes.add(join(volumesDir, n.slice(0, -suffix.length)));
  }
  const out: Recovered[] = [];
  for (const v of [...volumes].sort()) {
    const r = await recoverVolume(v);
    if (r) out.push(r);
  }
  return out;
}

/**
 * Whether an extraction may replace `volume` outside a cut-over (a pre-copy round laying the image
 * down early): only when nothing but fedflow has written there. It is absent or empty, or it holds
 * exactly the image recorded beside it (a live workload's writes would have changed that).
 */
export function onlyImagesHere(volume: string): boolean {
  let names: string[];
  try {
    if (!lstatSync(volume).isDirectory()) return false;
    names = readdirSync(volume);
  } catch {
    return !existsSync(volume);
  }
  if (names.length === 0) return true;
  const rec = readImageRecord(volume);
  return !!rec && recordMismatch(volume, rec) === undefined;
}

/** Removes what this module keeps beside `volume` (when the volume itself is removed). */
export function forgetVolumeImage(volume: string): void {
  for (const p of [recordPath(volume), journalPath(volume), stagingPath(volume)]) rmSync(p, { recursive: true, force: true });
}
