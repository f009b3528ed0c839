/**
 * The chunk store's records of the volume files it assembled (volumes/<sha256 of the path>.json;
 * format in format.ts): what was written at a path and that file's identity right after, so a
 * later assemble can use the file as its basis only while it is exactly what the store wrote,
 * and so a file left mid-update by a crash is known incomplete.
 */
import { createHash } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '../../core/manifest';
import { writeFileDurableAsync } from '../durable-files';
import type { ChunkIndex } from './chunk-index';
import { TMP_PREFIX, volumesDir } from './format';
import type { ManifestStore } from './manifests';

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

function recordPath(dir: string, path: string): string {
  return join(volumesDir(dir), `${createHash('sha256').update(Buffer.from(path)).digest('hex')}.json`);
}

/** Creates volumes/ and removes the `.tmp-` files a crash left there (written like manifests). */
export async function sweepVolumeRecords(dir: string, state: ChunkIndex): Promise<void> {
  const vdir = volumesDir(dir);
  await fs.mkdir(vdir, { recursive: true });
  for (const name of await fs.readdir(vdir)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    await fs.rm(join(vdir, name), { force: true });
    state.counters.cleanedTempFiles++;
  }
}

/** The basis manifest for `basisPath`, or why it cannot be used. */
export async function basisFor(dir: string, manifests: ManifestStore, basisPath: string): Promise<{ manifest: Manifest } | { refused: string }> {
  let rec: AssembledVolume;
  try {
    rec = JSON.parse(await fs.readFile(recordPath(dir, basisPath), 'utf8')) as AssembledVolume;
  } catch {
    return { refused: `no record of this store assembling ${basisPath}` };
  }
  const now = fileIdentity(basisPath);
  if (rec.state === 'patching') return { refused: `${basisPath} was left mid-update (to ${rec.rootHash}) by a crash` };
  if (!now || rec.path !== basisPath) return { refused: `${basisPath} is gone` };
  for (const k of ['dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'] as const) {
    if (now[k] !== rec[k]) return { refused: `${basisPath} changed since this store wrote it (${k} ${rec[k]} -> ${now[k]})` };
  }
  const manifest = await manifests.get(rec.rootHash);
  if (!manifest) return { refused: `the manifest ${rec.rootHash} of ${basisPath} is no longer in the store` };
  return { manifest };
}

/** Marks the file at `path` as being updated in place to `rootHash`, durably, before its first write. */
export async function recordPatching(dir: string, path: string, rootHash: string): Promise<void> {
  await writeFileDurableAsync(recordPath(dir, path), JSON.stringify({ path, rootHash, state: 'patching' }));
}

/** Remembers what was just written at `path`, so a later assemble can use it as its basis. */
export async function recordVolume(dir: string, path: string, rootHash: string): Promise<void> {
  const id = fileIdentity(path);
  if (!id) return;
  await fs.mkdir(volumesDir(dir), { recursive: true });
  const rec: AssembledVolume = { path, rootHash, ...id };
  await writeFileDurableAsync(recordPath(dir, path), JSON.stringify(rec));
}

/** Whether the file at `path` is a whole volume this store wrote (and which), or one left mid-update by a crash. */
export async function volumeState(
  dir: string,
  manifests: ManifestStore,
  path: string,
): Promise<{ state: 'complete'; rootHash: string } | { state: 'incomplete'; rootHash: string } | { state: 'unknown' }> {
  try {
    const rec = JSON.parse(await fs.readFile(recordPath(dir, path), 'utf8')) as Partial<AssembledVolume> & { state?: string; rootHash: string };
    if (rec.state === 'patching') return { state: 'incomplete', rootHash: rec.rootHash };
    const b = await basisFor(dir, manifests, path);
    return 'manifest' in b ? { state: 'complete', rootHash: rec.rootHash } : { state: 'unknown' };
  } catch {
    return { state: 'unknown' };
  }
}
