/**
 * A site's point-in-time volume images and their manifests, by root hash: what the transfer
 * server serves chunks from. A directory volume is archived (deterministic tar) into one image
 * file while it is chunked and hashed, in a single pass; a plain file can be served in place.
 * Chunks are read from the image by offset, so the source never copies them into a chunk store.
 */
import { closeSync, constants as fsConstants, createReadStream, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cp, lstat, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { hash as oneShotHash } from 'node:crypto';
import { join, sep } from 'node:path';
import type { ChunkerParams } from '../../core/chunking';
import type { Manifest } from '../../core/manifest';
import { FinalImages } from './final-images';
import { buildManifestFromStream, verifyManifest } from './manifest-builder';
import { firstIndexOf } from '../../core/manifest-delta';
import { buildManifestFromFileParallel } from './parallel-capture';
import { captureDirectory, type ChunkLocations, type PriorCapture } from './dir-capture';
import { loadPrior, priorFiles, savePrior } from './prior-captures';
import { layoutVolume, VolumeTarReader, type VolumeLayout } from './volume-tar';

/**
 * One captured image. Its chunks lie in one or more files: a full capture's in its own image file
 * at their manifest offsets; a capture that reused the previous round's chunks keeps them where
 * that capture left them, and writes only its fresh chunks to a file of its own (`own`).
 */
interface Entry {
  manifest: Manifest;
  files: string[];
  fileOf: Uint16Array;
  offsetOf: Float64Array;
  /** Index in `files` of the file this capture wrote (-1: none); chunks read from another are checked against their hash. */
  own: number;
  byHash: Map<string, number>;
}

/** What a capture read and what it took from the previous round's record (./reuse-cache.ts). */
export interface CaptureReuse {
  /** Regular files whose data was read (and chunked and hashed). */
  filesRead: number;
  /** Regular files whose stat tuple was unchanged: their chunks were taken from the previous round. */
  filesReused: number;
  /** Bytes of the image read from the volume (file data) and chunked. */
  bytesRead: number;
  /** Chunks hashed here / taken from the previous round's manifest. */
  chunksHashed: number;
  chunksReused: number;
}

export interface ImageResult {
  manifest: Manifest;
  scanMs: number;
  reuse?: CaptureReuse;
}

/** The deterministic image of a directory (./volume-tar.ts), as a stream: what a capture of it chunks. */
export async function* tarStream(dir: string, layout: VolumeLayout = layoutVolume(dir)): AsyncIterable<Uint8Array> {
  const reader = new VolumeTarReader(layout);
  try {
    for (let pos = 0; pos < layout.totalBytes; ) {
      const n = Math.min(1 << 20, layout.totalBytes - pos);
      const buf = Buffer.allocUnsafe(n);
      await reader.read(buf, 0, n, pos);
      pos += n;
      yield buf;
    }
  } finally {
    await reader.close();
  }
}


/**
 * tar refuses a file whose size changed while it was read ("did not encounter expected EOF" /
 * "encountered unexpected EOF"): a live workload appending to its volume during a pre-copy round.
 */
function changedWhileRead(err: unknown): boolean {
  return /(did not encounter expected|encountered unexpected) EOF/.test(String((err as Error)?.message ?? err));
}

/** Manifests of released images kept as delta bases. */
const PAST_MANIFESTS = 8;

/** A capture's fresh-chunk file: `<root>.<unique>.img`. */
const OWN_FILE = /^[0-9a-f]{64}\.[0-9a-z]+\.img$/;

/**
 * The previous capture is not reused once its chunks lie in more than this many files, or those
 * files hold more than twice the image: a full capture then writes one new image file and lets
 * the old ones go (what bounds the disk that rounds of small changes leave behind). Never at a
 * cut-over (`capture`'s `frozen`): that capture reads only what changed whatever the files hold
 * (a round's worth more disk), since a full read there is downtime. The files go when the volume
 * leaves the site (`forgetVolume`, at the decommission after a migration).
 */
const MAX_REUSE_FILES = 8;

/** The pending-write key of a sweep of files a volume's earlier reuse records named. */
const sweepKeyPrefix = (volumeId: string) => `sweep:${encodeURIComponent(volumeId)}:`;

/** Released images' manifests kept parsed in memory (SourceImages.recentPast). */
const RECENT_PAST_MANIFESTS = 2;

/** How long after a capture its metadata is written (see SourceImages.later): past a cut-over's window. */
const METADATA_DELAY_MS = 2_000;

export class SourceImages {
  private readonly cache = new Map<string, Entry>();
  private readonly handles = new Map<string, Promise<FileHandle>>();
  private readonly fds = new Map<string, number>();
  /** The latest capture of each directory volume, for the next capture's reuse (./prior-captures.ts). */
  private readonly priors = new Map<string, PriorCapture>();
  /** Writes of metadata done after a capture returned (the cut-over window does not wait for them). */
  private writes: Promise<unknown> = Promise.resolve();
  /**
   * The manifests of the images released last, kept parsed: the next round's manifest is sent as
   * a delta against the one before, and at the cut-over that one was released a moment ago. Read
   * back from its file, a 1 GiB volume's (6.6 MB of JSON) took 50-100 ms to parse and check,
   * inside the window.
   */
  private readonly recentPast = new Map<string, { manifest: Manifest; index: ReadonlyMap<string, number> }>();
  /** Roots whose release is under way (its metadata may still be written, then moved to past/). */
  private readonly releasing = new Set<string>();
  /** Metadata writes not started yet: each starts METADATA_DELAY_MS after it was queued, or at flush, close or its image's release. */
  private pending: { key: string; write: () => Promise<unknown>; dueAt: number }[] = [];
  private pendingTimer?: NodeJS.Timeout;
  private captures = 0;
  private sweeps = 0;
  /**
   * Files captures under way read from (their volume's record when they began), counted: named by
   * no image or record until the capture ends, they must not be swept meanwhile (a retried attempt
   * of a capture can run beside the first, whose end may replace or forget the record).
   */
  private readonly inUse = new Map<string, number>();
  /** Cut-over images announced to waiting targets (GET /finals/<slot>). */
  readonly finals: FinalImages;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.finals = new FinalImages(join(dir, 'finals'));
    // What a crash in the middle of a capture leaves behind: never an image, only scratch.
    for (const name of readdirSync(dir)) if (name.startsWith('.capture-') || name.startsWith('.snapshot-') || name.endsWith('.manifest.json.tmp')) rmSync(join(dir, name), { recursive: true, force: true });
    this.collect();
  }

  private metaPath(root: string): string {
    return join(this.dir, `${root}.manifest.json`);
  }

  /** The files a live image's chunks lie in (small: what the collection of unused files reads). */
  private filesPath(root: string): string {
    return join(this.dir, `${root}.files.json`);
  }

  private pastPath(root: string): string {
    return join(this.dir, 'past', `${root}.manifest.json`);
  }

  private reuseDir(): string {
    return join(this.dir, 'reuse');
  }

  /**
   * A manifest this site captured, even if its image has been released since: the base a target
   * may name for a manifest delta (it holds that manifest from an earlier round or sync). The
   * PAST_MANIFESTS most recently released are kept; only the manifest, not the image (the last
   * RECENT_PAST_MANIFESTS of them parsed in memory, with their index).
   */
  manifestOf(root: string): Manifest | undefined {
    return this.deltaBase(root)?.manifest;
  }

  /**
   * manifestOf, with the manifest's index of first entries by hash when this site keeps one (an
   * image held, or one of the last released): the encoder of a delta against it needs that index
   * (~60 000 map entries at 1 GiB): the encode took 6.9-7.6 ms building it, 1.3-3.0 ms given it,
   * on the main thread inside the cut-over window (`npm run bench -- final-round`).
   */
  deltaBase(root: string): { manifest: Manifest; index?: ReadonlyMap<string, number> } | undefined {
    // Memory first: a just-released image's manifest must not be read back from its file (nor
    // its image brought back to life) while its release still writes that file.
    const cached = this.cache.get(root);
    if (cached) return { manifest: cached.manifest, index: cached.byHash };
    const past = this.recentPast.get(root);
    if (past) return { ...past };
    if (this.releasing.has(root)) return undefined;
    const e = this.get(root);
    if (e) return { manifest: e.manifest, index: e.byHash };
    const pastFile = this.pastPath(root);
    if (!existsSync(pastFile)) return undefined;
    try {
      const { manifest } = JSON.parse(readFileSync(pastFile, 'utf8')) as { manifest: unknown };
      const m = verifyManifest(manifest);
      return m.rootHash === root ? { manifest: m } : undefined;
    } catch {
      return undefined;
    }
  }

  /** The previous capture of a volume, if it may be reused for `volumePath` (in memory, else from its record). */
  private priorOf(volumeId: string, volumePath: string, frozen = false): PriorCapture | undefined {
    const prior = this.priors.get(volumeId) ?? loadPrior(this.reuseDir(), volumeId);
    if (!prior || prior.volumePath !== volumePath) return undefined;
    this.priors.set(volumeId, prior);
    let held = 0;
    for (const f of prior.locations.files) {
      try {
        held += statSync(f).size;
      } catch {
        // A file it needs is gone: nothing of it can be served.
        this.forgetPrior(volumeId);
        return undefined;
      }
    }
    if (!frozen && (prior.locations.files.length > MAX_REUSE_FILES || held > 2 * prior.totalBytes + (64 << 20))) return undefined;
    return prior;
  }

  /**
   * The volume left this site (decommissioned after a migration, or a target's copy removed): its
   * reuse record goes, and with it every capture file only that record kept (up to twice the
   * volume after many rounds). Files a held image or another volume's record needs stay; a held
   * image's go when it is released. Its next capture here, if it ever comes back, reads it whole.
   */
  async forgetVolume(volumeId: string): Promise<void> {
    // What the lists on disk name too (a record not loaded since a restart; a pin newer than its record).
    const onDisk = this.priors.has(volumeId) ? [] : this.recordedFiles(volumeId);
    this.forgetPrior(volumeId);
    // Now, not later: the files of this record and of the earlier ones still waiting to go.
    await this.startPending((p) => p.key.startsWith(sweepKeyPrefix(volumeId)));
    if (onDisk.length) await this.dropFiles(onDisk);
  }

  /** The files a volume's record and pin on disk name, read as plain lists (either may be missing or torn). */
  private recordedFiles(volumeId: string): string[] {
    const base = join(this.reuseDir(), encodeURIComponent(volumeId));
    const out: string[] = [];
    for (const f of [`${base}.pin.json`, `${base}.json`]) {
      try {
        const files = (JSON.parse(readFileSync(f, 'utf8')) as { files?: unknown }).files;
        if (Array.isArray(files)) out.push(...files.filter((x): x is string => typeof x === 'string'));
      } catch {
        // Missing or torn: nothing to add.
      }
    }
    return out;
  }

  /** Whether `path` is one of this store's own files (not a sibling directory's that shares the prefix). */
  private own(path: string): boolean {
    return path.startsWith(this.dir + sep);
  }

  private hold(files: readonly string[]): string[] {
    for (const f of files) this.inUse.set(f, (this.inUse.get(f) ?? 0) + 1);
    return [...files];
  }

  private unhold(files: readonly string[]): void {
    for (const f of files) {
      const n = (this.inUse.get(f) ?? 1) - 1;
      if (n > 0) this.inUse.set(f, n);
      else this.inUse.delete(f);
    }
  }

  /** Removes, after METADATA_DELAY_MS (outside a cut-over's window), those of `files` nothing needs by then. */
  private dropLater(volumeId: string, files: readonly string[]): void {
    if (files.length) this.later(`${sweepKeyPrefix(volumeId)}${++this.sweeps}`, () => this.dropFiles(files));
  }

  /** Removes those of `files` that no held image or reuse record needs (closing what this process has open of them). */
  private async dropFiles(files: readonly string[]): Promise<void> {
    const needed = this.neededFiles();
    for (const path of new Set(files)) {
      // inUse asked again for each file: a capture that began meanwhile holds what it reads.
      if (!this.own(path) || needed.has(path) || this.inUse.has(path)) continue;
      await this.closeFile(path);
      // On the thread pool: the loop serves other volumes' pulls and cut-overs meanwhile.
      await rm(path, { force: true });
    }
  }

  private forgetPrior(volumeId: string): void {
    const old = this.priors.get(volumeId);
    this.priors.delete(volumeId);
    // Its files go too, unless a held image or another record needs them.
    if (old) this.dropLater(volumeId, priorFiles(old));
    // A record still waiting to be written would bring it back.
    this.pending = this.pending.filter((p) => p.key !== `prior:${volumeId}`);
    this.armPending();
    const base = join(this.reuseDir(), encodeURIComponent(volumeId));
    rmSync(`${base}.json`, { force: true });
    rmSync(`${base}.pin.json`, { force: true });
  }

  /** The image of the volume, not cached yet: `capture`'s work. */
  private async imageOf(volumeId: string, volumePath: string, params: ChunkerParams, opts: { inPlace?: boolean; frozen?: boolean }): Promise<{ manifest: Manifest; entry: Entry; reuse?: CaptureReuse }> {
    const isDir = statSync(volumePath).isDirectory();
    let manifest: Manifest;
    let entry: Entry;
    let reuse: CaptureReuse | undefined;
    if (!isDir && opts.inPlace) {
      // The whole file is there: chunked and hashed on every core (same chunks as the serial chunker).
      manifest = await buildManifestFromFileParallel(volumePath, { volumeId, params });
      entry = singleFile(manifest, volumePath);
    } else if (isDir) {
      let result: Awaited<ReturnType<SourceImages['captureDir']>>;
      try {
        result = await this.captureDir(volumeId, volumePath, volumePath, params, opts.frozen);
      } catch (err) {
        if (!changedWhileRead(err)) throw err;
        // A pre-copy round of a volume that is being written: archive a point-in-time copy of
        // it instead (a reflink where the filesystem has them). Rounds are fuzzy by design; the
        // final round runs frozen, where nothing changes.
        this.forgetPrior(volumeId);
        const snap = join(this.dir, `.snapshot-${process.pid}-${Date.now()}`);
        try {
          // Asynchronous, so the agent keeps serving chunks and heartbeats while a big volume is
          // copied; links stay as they are; sockets and FIFOs (which tar would not archive as data) are skipped.
          await cp(volumePath, snap, {
            recursive: true,
            mode: fsConstants.COPYFILE_FICLONE,
            verbatimSymlinks: true,
            filter: async (src) => {
              const st = await lstat(src);
              return st.isFile() || st.isDirectory() || st.isSymbolicLink();
            },
          });
          result = await this.captureDir(volumeId, snap, undefined, params);
        } finally {
          await rm(snap, { recursive: true, force: true });
        }
      }
      ({ manifest, entry, reuse } = result);
    } else {
      const { manifest: m, imagePath } = await this.archive(volumeId, volumePath, params);
      manifest = m;
      entry = singleFile(manifest, imagePath);
    }
    return { manifest, entry, ...(reuse ? { reuse } : {}) };
  }

  /** Archives + chunks a directory volume (or chunks a file in place) and records the image. */
  async capture(volumeId: string, volumePath: string, params: ChunkerParams, opts: { inPlace?: boolean; frozen?: boolean } = {}): Promise<ImageResult> {
    const t0 = performance.now();
    // Until the image is cached, the files its capture may reuse (the volume's record's) are held against sweeps.
    const held = this.hold(this.priors.has(volumeId) ? priorFiles(this.priors.get(volumeId)!) : this.recordedFiles(volumeId));
    let manifest: Manifest;
    let entry: Entry;
    let reuse: CaptureReuse | undefined;
    try {
      ({ manifest, entry, reuse } = await this.imageOf(volumeId, volumePath, params, opts));
      this.cache.set(manifest.rootHash, entry);
      // Which files it needs, written now (small): a release collects unused files by these.
      if (entry.files.some((f) => this.own(f))) writeFileSync(this.filesPath(manifest.rootHash), JSON.stringify({ files: entry.files }));
    } finally {
      this.unhold(held);
    }
    // The manifest and locations are written after the caller has the image (a 2 GB volume's
    // manifest is ~15 MB of JSON): until then it is served from memory; an agent that dies first
    // has lost the image, and its round captures again.
    const meta = entry.files.length === 1 && sameOffsets(entry) ? { imagePath: entry.files[0]!, manifest } : { manifest, files: entry.files, fileOf: b64(entry.fileOf), offsetOf: b64(entry.offsetOf), own: entry.own };
    // Through a temporary file and a rename: a process killed in the write (persist() runs it inside
    // a cut-over's capture) leaves the old state, never a torn file.
    const metaPath = this.metaPath(manifest.rootHash);
    this.later(manifest.rootHash, async () => {
      await writeFile(`${metaPath}.tmp`, JSON.stringify(meta));
      await rename(`${metaPath}.tmp`, metaPath);
    });
    return { manifest, scanMs: performance.now() - t0, ...(reuse ? { reuse } : {}) };
  }

  /**
   * Runs `write` after the writes before it, METADATA_DELAY_MS from now (or at the next flush,
   * release or close); a failure is logged, not thrown (these files are caches). Not at once:
   * serialising a big image's metadata holds this process's event loop (a 1 GiB volume's manifest
   * is ~6.6 MB of JSON, 30-45 ms to stringify; its reuse record another ~30 ms), and right after a
   * cut-over's capture that lands inside the window, before the image is even announced, where
   * this process's fronts and the target's pull wait for the loop. An agent that dies before the
   * write has lost the image (its round captures again) or the record (the next capture reads the
   * whole volume): a cost, never a wrong byte.
   */
  private later(key: string, write: () => Promise<unknown>): void {
    this.pending.push({ key, write, dueAt: performance.now() + METADATA_DELAY_MS });
    this.armPending();
  }

  /** The timer for the earliest pending write (each waits its own delay, not the first one's). */
  private armPending(): void {
    clearTimeout(this.pendingTimer);
    this.pendingTimer = undefined;
    if (!this.pending.length) return;
    const next = Math.min(...this.pending.map((p) => p.dueAt));
    this.pendingTimer = setTimeout(() => {
      const now = performance.now(); // one clock reading: a write due between two would start in neither list
      void this.startPending((p) => p.dueAt <= now);
    }, Math.max(0, next - performance.now())).unref();
  }

  /**
   * Starts the pending writes that `which` picks (all by default; a release starts its own image's
   * only: it must not start the write of a capture that just happened), in order, after those
   * already started; returns when all started so far are done.
   */
  private startPending(which: (p: { key: string; dueAt: number }) => boolean = () => true): Promise<unknown> {
    const now: typeof this.pending = [];
    const rest: typeof this.pending = [];
    for (const p of this.pending) (which(p) ? now : rest).push(p);
    this.pending = rest;
    this.armPending();
    for (const { write } of now) {
      this.writes = this.writes.then(() => new Promise((r) => setImmediate(r))).then(write).catch((err: unknown) => console.warn(`source images: a metadata write in ${this.dir} failed: ${String(err)}`));
    }
    return this.writes;
  }

  /**
   * Writes image `root`'s metadata now, if it is still waiting (SourceImages.later), and waits for
   * it: an image this process must not lose if it dies (a cut-over's, once its activity is about
   * to complete: nothing would capture it again, and its target may still be pulling it).
   */
  async persist(root: string): Promise<void> {
    await this.startPending((p) => p.key === root);
  }

  /** Writes the metadata queued so far, now, and waits for it. */
  async flush(): Promise<void> {
    await this.startPending();
  }

  /**
   * A directory capture: reuses the previous capture of the volume where the stat tuples prove the
   * bytes unchanged (`recordAs`: the volume's path, for the next capture; absent for a copy).
   */
  private async captureDir(volumeId: string, path: string, recordAs: string | undefined, params: ChunkerParams, frozen = false): Promise<{ manifest: Manifest; entry: Entry; reuse: CaptureReuse }> {
    const prior = recordAs ? this.priorOf(volumeId, recordAs, frozen) : undefined;
    // The record this capture replaces, reused or not (past the bound it is not).
    const previous = recordAs ? this.priors.get(volumeId) : undefined;
    const tmp = join(this.dir, `.capture-${process.pid}-${Date.now()}-${++this.captures}.img`);
    let r: Awaited<ReturnType<typeof captureDirectory>>;
    try {
      r = await captureDirectory(path, { volumeId, params, freshPath: tmp, ...(prior ? { prior } : {}) });
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const own = r.locations.files.indexOf(tmp);
    const files = [...r.locations.files];
    if (own >= 0) {
      // No fsync: the image is a cache of the volume, not the data of record, and every chunk
      // served from it is checked against its hash by the target before it is stored (and a chunk
      // taken from an earlier capture's file, by this agent as it serves it). A torn file fails the
      // pull (the round is captured again); it cannot corrupt the target. Syncing it cost the
      // cut-over window time in proportion to what was written.
      files[own] = join(this.dir, `${r.manifest.rootHash}.${Date.now().toString(36)}${this.captures.toString(36)}.img`);
      renameSync(tmp, files[own]!);
    }
    const locations: ChunkLocations = { ...r.locations, files };
    const entry: Entry = { manifest: r.manifest, files, fileOf: locations.fileOf, offsetOf: locations.offsetOf, own, byHash: firstIndexOf(r.manifest.chunks) };
    if (recordAs) {
      const next: PriorCapture = { ...r.next, locations };
      this.priors.set(volumeId, next);
      // The pin (which files the record needs) now, the record itself after the caller has the image.
      mkdirSync(this.reuseDir(), { recursive: true });
      writeFileSync(join(this.reuseDir(), `${encodeURIComponent(volumeId)}.pin.json`), JSON.stringify({ files: priorFiles(next) }));
      // Files the previous record named and this one does not: an image released before this
      // capture left them to the record; unless something else needs them, they go (later, with
      // the metadata: not inside a cut-over's window).
      if (previous) this.dropLater(volumeId, priorFiles(previous).filter((f) => !files.includes(f)));
      // Skipped if a later capture replaced it or forgetPrior dropped it before the write began.
      this.later(`prior:${volumeId}`, async () => {
        if (this.priors.get(volumeId) !== next) return;
        await savePrior(this.reuseDir(), volumeId, next);
        // Forgotten while it was written (forgetPrior's rmSync came first): not brought back.
        if (this.priors.get(volumeId) !== next) rmSync(join(this.reuseDir(), `${encodeURIComponent(volumeId)}.json`), { force: true });
      });
    } else {
      this.forgetPrior(volumeId);
    }
    return { manifest: r.manifest, entry, reuse: { ...r.figures } };
  }

  /** One pass over a plain file: written to an image file and chunked; a failed pass leaves no file. */
  private async archive(volumeId: string, path: string, params: ChunkerParams): Promise<{ manifest: Manifest; imagePath: string }> {
    const src = createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>;
    const tmp = join(this.dir, `.capture-${process.pid}-${Date.now()}-${++this.captures}.img`);
    const fh = await open(tmp, 'w');
    let manifest: Manifest;
    try {
      // One pass: each block goes to the image file and through the chunker, the write (on the
      // thread pool) overlapping the chunking and hashing of the same block (on this thread).
      async function* tee(): AsyncIterable<Uint8Array> {
        let writing: Promise<unknown> | undefined;
        try {
          for await (const block of src) {
            await writing;
            writing = fh.write(block);
            yield block;
          }
          await writing;
        } finally {
          // Left early (the chunker failed): the write in flight settles before the file is closed,
          // and its own error, if any, is not left unhandled.
          await writing?.catch(() => undefined);
        }
      }
      manifest = await buildManifestFromStream(tee(), { volumeId, params });
      // No fsync: see captureDir.
    } catch (err) {
      await fh.close();
      rmSync(tmp, { force: true });
      throw err;
    }
    await fh.close();
    const imagePath = join(this.dir, `${manifest.rootHash}.img`);
    renameSync(tmp, imagePath);
    return { manifest, imagePath };
  }

  get(root: string): Entry | undefined {
    if (!/^[0-9a-f]{64}$/.test(root)) return undefined;
    const hit = this.cache.get(root);
    if (hit) return hit;
    // Being released: gone, even while its metadata file is still on disk.
    if (this.releasing.has(root)) return undefined;
    const meta = this.metaPath(root);
    if (!existsSync(meta)) return undefined;
    let raw: { imagePath?: string; manifest: unknown; files?: string[]; fileOf?: string; offsetOf?: string; own?: number };
    try {
      raw = JSON.parse(readFileSync(meta, 'utf8')) as typeof raw;
    } catch {
      // Torn (written by an agent before these writes went through a rename): not an image held.
      rmSync(meta, { force: true });
      return undefined;
    }
    const m = verifyManifest(raw.manifest);
    let e: Entry;
    if (raw.files && raw.fileOf && raw.offsetOf) {
      const fileOf = new Uint16Array(fromB64(raw.fileOf, 2));
      const offsetOf = new Float64Array(fromB64(raw.offsetOf, 8));
      if (fileOf.length !== m.chunks.length || offsetOf.length !== m.chunks.length) throw new Error(`image metadata ${meta} does not match its manifest (${fileOf.length} locations for ${m.chunks.length} chunks)`);
      e = { manifest: m, files: raw.files, fileOf, offsetOf, own: raw.own ?? -1, byHash: firstIndexOf(m.chunks) };
    } else {
      e = singleFile(m, raw.imagePath!);
    }
    this.cache.set(root, e);
    return e;
  }

  /** Reads one chunk of an image by its hash (undefined if the manifest has no such chunk). */
  async readChunk(root: string, hash: string): Promise<Buffer | undefined> {
    const e = this.get(root);
    const i = e?.byHash.get(hash);
    if (!e || i === undefined) return undefined;
    const path = e.files[e.fileOf[i]!]!;
    const length = e.manifest.chunks[i]!.length;
    let fh = this.handles.get(path);
    if (!fh) {
      fh = open(path, 'r');
      this.handles.set(path, fh);
    }
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await (await fh).read(buf, 0, length, e.offsetOf[i]!);
    if (bytesRead !== length) throw new Error(`image file ${path} is shorter than its manifest says (chunk at ${e.offsetOf[i]})`);
    return this.checked(e, i, hash, buf);
  }

  /**
   * readChunk, synchronously: for the chunk endpoint, which reads thousands of small chunks per
   * transfer. A chunk read from the page cache takes microseconds; as an async read it queues on
   * the thread pool behind the target's fsyncs (same process in tests and benchmarks, same machine
   * often), which measured as most of a pull's time.
   */
  readChunkSync(root: string, hash: string): Buffer | undefined {
    const e = this.get(root);
    const i = e?.byHash.get(hash);
    if (!e || i === undefined) return undefined;
    const path = e.files[e.fileOf[i]!]!;
    const length = e.manifest.chunks[i]!.length;
    let fd = this.fds.get(path);
    if (fd === undefined) {
      fd = openSync(path, 'r');
      this.fds.set(path, fd);
    }
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, e.offsetOf[i]! + got);
      if (n === 0) throw new Error(`image file ${path} is shorter than its manifest says (chunk at ${e.offsetOf[i]})`);
      got += n;
    }
    return this.checked(e, i, hash, buf);
  }

  /**
   * A chunk taken from an earlier capture's file is hashed as it is served: that file was written
   * rounds ago, unsynced, and a crash of the machine may have torn it. A mismatch drops the
   * volume's reuse record (the next capture reads everything) and fails this read.
   */
  private checked(e: Entry, i: number, hash: string, buf: Buffer): Buffer {
    if (e.fileOf[i] === e.own) return buf;
    if (oneShotHash('sha256', buf, 'hex') === hash) return buf;
    this.forgetPrior(e.manifest.volumeId);
    throw new Error(`chunk ${hash.slice(0, 12)} of image ${e.manifest.rootHash.slice(0, 12)}, kept in ${e.files[e.fileOf[i]!]} from an earlier round, does not match its hash; the next capture of ${e.manifest.volumeId} reads the whole volume`);
  }

  /** Forgets an image; removes the files no other image or reuse record needs (never a volume served in place). */
  async release(root: string): Promise<void> {
    const e = this.get(root);
    if (!e) return;
    this.releasing.add(root);
    try {
      await this.releaseEntry(root, e);
    } finally {
      this.releasing.delete(root);
    }
  }

  private async releaseEntry(root: string, e: Entry): Promise<void> {
    this.cache.delete(root);
    this.recentPast.delete(root);
    this.recentPast.set(root, { manifest: e.manifest, index: e.byHash });
    for (const old of [...this.recentPast.keys()].slice(0, -RECENT_PAST_MANIFESTS)) this.recentPast.delete(old);
    rmSync(this.filesPath(root), { force: true });
    // Keep the manifest (not the image) as a possible delta base for the next round's manifest.
    await this.startPending((p) => p.key === root);
    mkdirSync(join(this.dir, 'past'), { recursive: true });
    try {
      renameSync(this.metaPath(root), this.pastPath(root));
      const past = readdirSync(join(this.dir, 'past'))
        .map((name) => ({ name, mtime: statSync(join(this.dir, 'past', name)).mtimeMs }))
        .sort((a, b) => b.mtime - a.mtime);
      for (const old of past.slice(PAST_MANIFESTS)) rmSync(join(this.dir, 'past', old.name), { force: true });
    } catch {
      rmSync(this.metaPath(root), { force: true });
    }
    await this.dropFiles(e.files);
  }

  private async closeFile(path: string): Promise<void> {
    const fh = this.handles.get(path);
    this.handles.delete(path);
    if (fh) await (await fh).close().catch(() => undefined);
    const fd = this.fds.get(path);
    this.fds.delete(path);
    if (fd !== undefined) closeSync(fd);
  }

  /** Files some live image or reuse record still needs: from memory and from the small lists on disk. */
  private neededFiles(): Set<string> {
    const needed = new Set<string>(this.inUse.keys());
    for (const e of this.cache.values()) for (const f of e.files) needed.add(f);
    for (const p of this.priors.values()) for (const f of priorFiles(p)) needed.add(f);
    const lists = [
      ...readdirSync(this.dir).filter((n) => n.endsWith('.files.json')).map((n) => join(this.dir, n)),
      ...(existsSync(this.reuseDir()) ? readdirSync(this.reuseDir()).filter((n) => n.endsWith('.pin.json')).map((n) => join(this.reuseDir(), n)) : []),
    ];
    for (const list of lists) {
      try {
        for (const f of (JSON.parse(readFileSync(list, 'utf8')) as { files: string[] }).files) needed.add(f);
      } catch {
        // A torn list: its image is lost anyway (it is captured again).
      }
    }
    return needed;
  }

  /** At start-up: capture files no image or record names (a crash between writing one and naming it). */
  private collect(): void {
    const needed = this.neededFiles();
    for (const name of readdirSync(this.dir)) if (OWN_FILE.test(name) && !needed.has(join(this.dir, name))) rmSync(join(this.dir, name), { force: true });
  }

  async close(): Promise<void> {
    await this.startPending();
    for (const fh of this.handles.values()) await (await fh).close().catch(() => undefined);
    this.handles.clear();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/** An image whose chunks all lie in one file at their manifest offsets (a full capture, or a file served in place). */
function singleFile(manifest: Manifest, path: string): Entry {
  return { manifest, files: [path], fileOf: new Uint16Array(manifest.chunks.length), offsetOf: Float64Array.from(manifest.chunks, (c) => c.offset), own: 0, byHash: firstIndexOf(manifest.chunks) };
}

function sameOffsets(e: Entry): boolean {
  return e.manifest.chunks.every((c, i) => e.offsetOf[i] === c.offset && e.fileOf[i] === 0);
}

function b64(a: Uint16Array | Float64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

/** Decoded into a fresh, aligned buffer of whole elements of `size` bytes. */
function fromB64(s: string, size: number): ArrayBuffer {
  const b = Buffer.from(s, 'base64');
  if (b.length % size) throw new Error(`location table of ${b.length} bytes is not whole ${size}-byte elements`);
  const out = new ArrayBuffer(b.length);
  new Uint8Array(out).set(b);
  return out;
}
