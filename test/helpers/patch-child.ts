/**
 * A process that patches a volume in place and stops in the middle, so a test can kill -9 it there:
 *   node --import tsx test/helpers/patch-child.ts <store dir> <root> <volume> <before-commit|mid-apply> <marker file>
 * Opens the store, extracts the image `root` into `volume` (a patch: the volume holds an earlier
 * image), and at the named point writes the marker file and waits to be killed.
 */
import { writeFileSync } from 'node:fs';
import { ChunkStore } from '../../agent/store/chunk-store';
import { extractVolume } from '../../agent/capture/volume-extract';

async function waitToBeKilled(marker: string, what: string): Promise<never> {
  writeFileSync(marker, what);
  setInterval(() => undefined, 60_000);
  return new Promise<never>(() => undefined);
}

async function run(): Promise<void> {
  const [storeDir, root, volume, point, marker] = process.argv.slice(2) as [string, string, string, 'before-commit' | 'mid-apply', string];
  const store = await ChunkStore.open(storeDir);
  const manifest = await store.getManifest(root);
  if (!manifest) throw new Error(`manifest ${root} is not in the store at ${storeDir}`);
  const figures = await extractVolume(store, manifest, volume, undefined, {
    hooks: {
      beforeCommit: () => (point === 'before-commit' ? waitToBeKilled(marker, 'staged, not committed') : undefined),
      afterOp: (n) => (point === 'mid-apply' && n === 3 ? waitToBeKilled(marker, `committed, ${n} operations applied`) : undefined),
    },
  });
  // Reached only if the hook's point never came: the test then fails on the missing marker.
  console.log(JSON.stringify(figures));
  await store.close();
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
