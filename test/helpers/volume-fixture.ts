/**
 * A directory volume for the in-place patch tests: a few hundred files of varied sizes in nested
 * directories, captured as the source does (deterministic tar, FastCDC), its chunks put in a
 * target's store. The root hash of a directory is computed the same way: equal roots, equal trees
 * (names, types, modes, link targets and contents).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SourceImages } from '../../agent/capture/source-images';
import type { ChunkStore } from '../../agent/store/chunk-store';
import type { Manifest } from '../../core/manifest';
import { seededBytes } from '../unit/delta/seeded-bytes';

export const VOLUME_PARAMS = { minSize: 2048, avgSize: 8192, maxSize: 32768 };

/** ~300 files (0 B to 96 KiB, one of 2 MiB), three levels of directories, a symlink, a long name. */
export function buildVolume(vol: string): void {
  let seed = 1;
  for (let a = 0; a < 6; a++) {
    for (let b = 0; b < 5; b++) {
      const d = join(vol, `dir-${a}`, `sub-${b}`);
      mkdirSync(d, { recursive: true });
      for (let f = 0; f < 10; f++) {
        const size = (seed * 7919) % 98_304;
        writeFileSync(join(d, `file-${f}.dat`), seededBytes(size, seed++));
      }
    }
  }
  writeFileSync(join(vol, 'big.bin'), seededBytes(2 << 20, 4242));
  writeFileSync(join(vol, 'log.jsonl'), seededBytes(300_000, 77));
  symlinkSync('dir-0/sub-0/file-0.dat', join(vol, 'link'));
  // A name longer than a ustar header holds: tar writes a pax extended header before it.
  writeFileSync(join(vol, 'dir-1', `${'long-name-'.repeat(15)}.txt`), seededBytes(5000, 99));
}

/** Captures `vol` as the source does and puts its chunks and manifest in the target's store. */
export async function captureInto(images: SourceImages, store: ChunkStore, vol: string): Promise<Manifest> {
  const { manifest } = await images.capture('vol', vol, VOLUME_PARAMS);
  for (const c of manifest.chunks) await store.put(c.hash, (await images.readChunk(manifest.rootHash, c.hash))!);
  await store.putManifest(manifest, 'baseline');
  return manifest;
}

/** The root hash of a directory, captured the way the source captures a volume. */
export async function rootOf(dir: string, scratchParent: string): Promise<string> {
  const scratch = mkdtempSync(join(scratchParent, 'root-'));
  const images = new SourceImages(scratch);
  try {
    return (await images.capture('vol', dir, VOLUME_PARAMS)).manifest.rootHash;
  } finally {
    await images.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
