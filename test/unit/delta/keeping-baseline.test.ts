/**
 * The final round writes its baseline manifest beside the volume's write (activities/sync.ts
 * keepingBaseline): the write overlaps the patch, but the manifest is durable before the round
 * returns, also when the patch fails, and a failure of either is reported. Real store on disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keepingBaseline } from '../../../activities/sync';
import { buildManifestFromStream } from '../../../agent/capture/manifest-builder';
import { ChunkStore } from '../../../agent/store/chunk-store';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const PARAMS = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

async function manifestOf(seed: number): Promise<Manifest> {
  async function* one() {
    yield seededBytes(300_000, seed);
  }
  return buildManifestFromStream(one(), { volumeId: `vol-${seed}`, params: PARAMS });
}

/** What a store opened afresh on `dir` holds: only what reached the disk. */
async function heldAfterReopen(dir: string): Promise<{ rootHash: string; retention: string }[]> {
  const again = await ChunkStore.open(dir);
  try {
    return again.listManifests();
  } finally {
    await again.close();
  }
}

describe('keepingBaseline', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-keeping-baseline-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('returns the work result once the manifest is stored as baseline on disk, the two run side by side', async () => {
    const at = join(dir, 'ok');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(1);
    let heldDuringWork: boolean | undefined;
    const out = await keepingBaseline(store, m, async () => {
      // The work starts before the manifest's file is written (it runs beside it).
      heldDuringWork = store.listManifests().some((x) => x.rootHash === m.rootHash);
      await new Promise((r) => setTimeout(r, 20));
      return 'volume written';
    });
    assert.equal(out, 'volume written');
    assert.equal(heldDuringWork, false, 'the work ran beside the write, not after it');
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }]);
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m.rootHash, retention: 'baseline' }], 'durable: a store opened afresh holds it');
  });

  it('throws the work error, after the manifest is stored all the same', async () => {
    const at = join(dir, 'work-fails');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(2);
    await assert.rejects(
      keepingBaseline(store, m, async () => {
        throw new Error('the patch failed');
      }),
      /the patch failed/,
    );
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }], 'the write was not left running behind the caller');
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m.rootHash, retention: 'baseline' }]);
  });

  it('throws the store error when the manifest is refused, after the work finished; nothing is stored', async () => {
    const at = join(dir, 'bad-manifest');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(3);
    const bad = { ...m, chunks: m.chunks.map((c, i) => (i === 1 ? { ...c, hash: m.chunks[0]!.hash } : c)) };
    let finished = false;
    await assert.rejects(
      keepingBaseline(store, bad, async () => {
        await new Promise((r) => setTimeout(r, 10));
        finished = true;
      }),
      /claims root hash [0-9a-f]{64}, but its chunk hashes give [0-9a-f]{64}/,
    );
    assert.equal(finished, true, 'the work ran to its end before the error was thrown');
    assert.deepEqual(store.listManifests(), []);
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), []);
  });
});
