import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildManifestFromFile } from '../../../agent/capture/manifest-builder';
import { buildManifestFromFileParallel } from '../../../agent/capture/parallel-capture';
import { CHUNKER_PRESETS } from '../../../core/chunking';
import { mixedBytes, seededBytes } from './seeded-bytes';
import { tempDir } from '../../helpers/tmp';

const dir = tempDir('fedflow-parallel-capture-');
const SMALL = { minSize: 256, avgSize: 1024, maxSize: 4096 };

async function same(name: string, data: Uint8Array, params: typeof SMALL, segments: number[]): Promise<void> {
  const path = join(dir, name);
  writeFileSync(path, data);
  const serial = await buildManifestFromFile(path, { volumeId: 'v', params });
  for (const n of segments) {
    const par = await buildManifestFromFileParallel(path, { volumeId: 'v', params }, { segments: n, minBytes: 0 });
    assert.deepEqual(par, serial, `${name}, ${n} segments`);
  }
}

test('parallel capture gives the serial chunker’s manifest: random data, 2-7 segments', async () => {
  await same('random', seededBytes(3_000_001, 11), SMALL, [2, 3, 4, 5, 6, 7]);
});

test('parallel capture gives the serial manifest on zero runs and repeats (segments starting inside them)', async () => {
  // mixedBytes: 100 kB zero runs and 100 kB of a repeated phrase every MB; with 2 MB and 20
  // segments, some segment starts fall inside a zero run, where chains only meet after it.
  await same('mixed', mixedBytes(2_000_000, 5), SMALL, [2, 9, 20]);
  await same('zeros', new Uint8Array(1_000_000), SMALL, [2, 3]);
});

test('parallel capture with the transfer presets, and files too small to split', async () => {
  await same('preset', mixedBytes(6_000_000, 9), CHUNKER_PRESETS.internet, [2, 4]);
  await same('tiny', seededBytes(5000, 3), SMALL, [2, 4]);
  await same('empty', new Uint8Array(0), SMALL, [2]);
});
