/**
 * `npm run bench -- patch-extract [--mib 64,256]`
 *
 * What the target writes into a directory volume for a small change, patched in place against
 * extracted whole (issue 14 item 5), at each volume size. Two cases per size, one JSON line each:
 * - `segments`: N files of 1 MiB (like a database's segment files), 8 KiB rewritten in one;
 * - `append`: one file of N MiB (like the sample's log), 4 MiB appended.
 * Printed, not asserted: `bytesWritten`, `patchMs`, and `wholeMs` for a whole extraction of the
 * same image. Datacenter-sized chunks (16/64/256 KiB).
 */
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SourceImages } from '../agent/capture/source-images';
import { extractVolume } from '../agent/capture/volume-extract';
import { ChunkStore } from '../agent/store/chunk-store';
import { seededBytes } from '../test/unit/delta/seeded-bytes';

const PARAMS = { minSize: 16384, avgSize: 65536, maxSize: 262144 };

async function once(mib: number, shape: 'segments' | 'append'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-patch-'));
  const src = join(dir, 'src');
  mkdirSync(src);
  if (shape === 'segments') for (let i = 0; i < mib; i++) writeFileSync(join(src, `seg-${String(i).padStart(4, '0')}`), seededBytes(1 << 20, i + 1));
  else for (let i = 0; i < mib; i++) appendFileSync(join(src, 'kv.jsonl'), seededBytes(1 << 20, i + 1));
  const images = new SourceImages(join(dir, 'images'));
  const store = await ChunkStore.open(join(dir, 'store'));
  try {
    const capture = async () => {
      const { manifest } = await images.capture('vol', src, PARAMS);
      for (const c of manifest.chunks) await store.put(c.hash, (await images.readChunk(manifest.rootHash, c.hash))!);
      await store.putManifest(manifest, 'baseline');
      return manifest;
    };
    const v1 = await capture();
    await extractVolume(store, v1, join(dir, 'vol'));
    if (shape === 'segments') {
      const fd = openSync(join(src, 'seg-0007'), 'r+');
      writeSync(fd, Buffer.alloc(8192, 9), 0, undefined, 300_000);
      closeSync(fd);
    } else appendFileSync(join(src, 'kv.jsonl'), seededBytes(4 << 20, 999));
    const v2 = await capture();
    const patch = await extractVolume(store, v2, join(dir, 'vol'));
    const whole = await extractVolume(store, v2, join(dir, 'whole'), undefined, { wholeOnly: true });
    console.log(
      JSON.stringify({
        bench: 'patch-extract',
        shape,
        volumeMiB: mib,
        method: patch.method,
        bytesWritten: patch.bytesWritten,
        filesWritten: patch.filesWritten,
        filesKept: patch.filesKept,
        patchMs: Math.round(patch.durationMs),
        wholeBytesWritten: whole.bytesWritten,
        wholeMs: Math.round(whole.durationMs),
      }),
    );
  } finally {
    await store.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(argv: string[]): Promise<void> {
  const at = argv.indexOf('--mib');
  const sizes = (at >= 0 ? argv[at + 1] ?? '' : '64,256').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 8)) throw new Error(`--mib is '${argv[at + 1]}'; expected sizes in MiB, at least 8, comma-separated (e.g. 64,256)`);
  for (const mib of sizes) for (const shape of ['segments', 'append'] as const) await once(mib, shape);
}
