/**
 * The chunk store's manifests (files under manifests/<retention>/; format in format.ts): which
 * manifests are held and with what retention, when each was last put (recency for delta bases),
 * the few kept parsed in memory, and the chunk references they count in the index (pinned
 * chunks are never evicted).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../../core/manifest';
import { verifyManifest } from '../capture/manifest-builder';
import { fsyncPathAsync, writeFileDurableAsync } from '../durable-files';
import type { ChunkIndex } from './chunk-index';
import { ManifestNotFoundError } from './errors';
import { decodeManifest, encodeManifest } from '../../core/manifest-delta';
import { MANIFEST_ENCODINGS, manifestPath, manifestsDir, RETENTIONS, TMP_PREFIX, type ManifestEncoding, type Retention } from './format';

/** A manifest file's bytes, as its encoding says (format.ts). Not verified: the caller does. */
function parseManifestFile(bytes: Buffer, encoding: ManifestEncoding): unknown {
  return encoding === 'ffm' ? decodeManifest(bytes) : JSON.parse(bytes.toString('utf8'));
}

/** Parsed manifests kept in memory (a 512 MiB volume in 8 KiB chunks: ~50 000 entries, a few MB). */
const MANIFEST_CACHE = 2;

export class ManifestStore {
  private readonly manifests = new Map<string, Retention>();
  /** How each held manifest's file is encoded (binary, or JSON from before). */
  private readonly encodings = new Map<string, ManifestEncoding>();
  /** When each manifest was last put (its file's mtime after a restart): recency for delta bases. */
  private readonly manifestAt = new Map<string, number>();
  /** Parsed manifests, least recently used first (at most MANIFEST_CACHE). */
  private readonly parsed = new Map<string, Manifest>();

  constructor(
    private readonly dir: string,
    private readonly state: ChunkIndex,
  ) {}

  get size(): number {
    return this.manifests.size;
  }

  /** Creates the manifest directories (open() does this before anything else is read). */
  async makeDirs(): Promise<void> {
    for (const r of RETENTIONS) await fs.mkdir(manifestsDir(this.dir, r), { recursive: true });
  }

  /** Loads the manifest files (after the chunk index, so that pinned bytes are counted); removes `.tmp-` leftovers. */
  async load(): Promise<void> {
    const loaded = new Map<string, Manifest>();
    for (const r of RETENTIONS) {
      const mdir = manifestsDir(this.dir, r);
      for (const name of await fs.readdir(mdir)) {
        if (name.startsWith(TMP_PREFIX)) {
          await fs.rm(join(mdir, name), { force: true });
          this.state.counters.cleanedTempFiles++;
          continue;
        }
        const dot = name.lastIndexOf('.');
        const root = name.slice(0, dot);
        const encoding = MANIFEST_ENCODINGS.find((e) => e === name.slice(dot + 1));
        try {
          if (!encoding) throw new Error(`not a manifest file (expected <root hash>.${MANIFEST_ENCODINGS.join(' or .')})`);
          const m = verifyManifest(parseManifestFile(await fs.readFile(join(mdir, name)), encoding));
          if (m.rootHash !== root) throw new Error(`file is named ${root} but holds manifest ${m.rootHash}`);
          if (this.manifests.has(root)) {
            // Both pinned and baseline (a crash during setRetention): kept pinned. (Or in both
            // encodings, which no store writes but a copy could: the first one read kept.)
            this.state.warnings.push(
              this.manifests.get(root) === r
                ? `manifest ${root} was held in two files in ${r}; kept one`
                : `manifest ${root} was both pinned and baseline (a crash during setRetention); kept pinned`,
            );
            if (r === 'baseline' || this.manifests.get(root) === r) await fs.rm(join(mdir, name), { force: true });
            continue;
          }
          this.manifests.set(root, r);
          this.encodings.set(root, encoding);
          this.manifestAt.set(root, (await fs.stat(join(mdir, name))).mtimeMs);
          this.state.addRefs(m, r, +1);
          loaded.set(root, m);
        } catch (err) {
          this.state.warnings.push(`ignored manifest file ${join(mdir, name)}: ${(err as Error).message}`);
        }
      }
    }
    // Parsed already: keep the most recent ones (the likely delta bases).
    for (const root of this.recentRoots(MANIFEST_CACHE).reverse()) this.cache(loaded.get(root)!);
  }

  /** Stores a manifest under its root hash after verifying it. Its chunks need not be present yet. */
  async put(input: Manifest, retention: Retention): Promise<void> {
    const m = verifyManifest(input);
    const current = this.manifests.get(m.rootHash);
    this.manifestAt.set(m.rootHash, Date.now());
    if (current !== undefined) {
      if (current !== retention) await this.setRetention(m.rootHash, retention);
      return;
    }
    await writeFileDurableAsync(manifestPath(this.dir, m.rootHash, retention, 'ffm'), encodeManifest(m).bytes);
    this.manifests.set(m.rootHash, retention);
    this.encodings.set(m.rootHash, 'ffm');
    this.state.addRefs(m, retention, +1);
    this.cache(m);
  }

  /**
   * A held manifest. The few most recently used are kept parsed in memory (MANIFEST_CACHE): a
   * sync reads the base manifest for the delta and again to assemble. Shared: treat as read-only.
   */
  async get(rootHash: string): Promise<Manifest | undefined> {
    const r = this.manifests.get(rootHash);
    if (r === undefined) return undefined;
    const hit = this.parsed.get(rootHash);
    if (hit) {
      this.cache(hit);
      return hit;
    }
    const encoding = this.encodingOf(rootHash);
    const m = parseManifestFile(await fs.readFile(manifestPath(this.dir, rootHash, r, encoding)), encoding) as Manifest;
    if (this.manifests.has(rootHash)) this.cache(m);
    return m;
  }

  private encodingOf(rootHash: string): ManifestEncoding {
    return this.encodings.get(rootHash) ?? 'ffm';
  }

  private cache(m: Manifest): void {
    this.parsed.delete(m.rootHash);
    this.parsed.set(m.rootHash, m);
    for (const root of this.parsed.keys()) {
      if (this.parsed.size <= MANIFEST_CACHE) break;
      this.parsed.delete(root);
    }
  }

  /** Roots of held manifests, most recently put first: the bases a manifest delta may name. */
  recentRoots(limit = 8): string[] {
    return [...this.manifests.keys()].sort((a, b) => (this.manifestAt.get(b) ?? 0) - (this.manifestAt.get(a) ?? 0)).slice(0, limit);
  }

  list(): { rootHash: string; retention: Retention }[] {
    return [...this.manifests].map(([rootHash, retention]) => ({ rootHash, retention }));
  }

  /** Pins a manifest's chunks against eviction, or releases them to be a baseline only. */
  async setRetention(rootHash: string, retention: Retention): Promise<void> {
    const from = this.manifests.get(rootHash);
    if (from === undefined) throw new ManifestNotFoundError(rootHash);
    if (from === retention) return;
    const m = (await this.get(rootHash))!;
    const encoding = this.encodingOf(rootHash);
    await fs.rename(manifestPath(this.dir, rootHash, from, encoding), manifestPath(this.dir, rootHash, retention, encoding));
    await fsyncPathAsync(manifestsDir(this.dir, retention));
    await fsyncPathAsync(manifestsDir(this.dir, from));
    this.state.addRefs(m, from, -1);
    this.state.addRefs(m, retention, +1);
    this.manifests.set(rootHash, retention);
  }

  /** Forgets a manifest; its chunks stay until gc() or eviction. */
  async delete(rootHash: string): Promise<boolean> {
    const r = this.manifests.get(rootHash);
    if (r === undefined) return false;
    const m = (await this.get(rootHash))!;
    await fs.rm(manifestPath(this.dir, rootHash, r, this.encodingOf(rootHash)), { force: true });
    await fsyncPathAsync(manifestsDir(this.dir, r));
    this.manifests.delete(rootHash);
    this.encodings.delete(rootHash);
    this.manifestAt.delete(rootHash);
    this.parsed.delete(rootHash);
    this.state.addRefs(m, r, -1);
    return true;
  }
}
