/**
 * A pre-copy round writes its baseline manifest beside the volume's write (activities/sync.ts
 * keepingBaseline): the write overlaps the patch, but the manifest is durable before the round
 * returns, also when the patch fails, and a failure of either is reported. A final round's
 * (baselineLater) is written after its window: the work first, the manifest a moment later,
 * also when the work failed; a manifest the store refuses is reported, never thrown at the
 * round. Real store on disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baselineLater, keepingBaseline } from '../../../activities/sync';
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

  it('baselineLater: the work first, alone; the manifest stored as baseline on disk after the delay', async () => {
    const at = join(dir, 'later');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(4);
    let heldDuringWork: boolean | undefined;
    const out = await baselineLater(
      store,
      m,
      async () => {
        await new Promise((r) => setTimeout(r, 20));
        heldDuringWork = store.listManifests().some((x) => x.rootHash === m.rootHash);
        return 'volume written';
      },
      100,
    );
    assert.equal(out, 'volume written');
    assert.equal(heldDuringWork, false, 'nothing of the manifest is written while the work runs');
    assert.deepEqual(store.listManifests(), [], 'not yet stored when the round returns');
    // Meanwhile the store answers with it from memory: a retried cut-over patches from it.
    assert.equal(await store.getManifest(m.rootHash), m);
    assert.equal(store.recentManifestRoots()[0], m.rootHash);
    await waitFor(() => store.listManifests().length > 0);
    // Listed once its file is written and fsynced (manifests.ts put).
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }]);
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m.rootHash, retention: 'baseline' }], 'durable: a store opened afresh holds it');
  });

  it('holdManifestLater: a cut-over still in its window holds the write; its end writes it a delay after', async () => {
    const at = join(dir, 'later-held');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(8);
    assert.equal(await baselineLater(store, m, async () => 'volume written', 50), 'volume written');
    // The workload's start and verification begin: the write waits for the activity's end.
    const release = store.holdManifestLater(m.rootHash, 100, 60_000);
    store.holdManifestLater('0'.repeat(64), 10, 10)(); // not put later: nothing happens
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(store.listManifests(), [], 'not written at its first deadline while held');
    assert.equal(await store.getManifest(m.rootHash), m, 'answered from memory meanwhile');
    // The activity ends: written a short delay after.
    const endedAt = Date.now();
    release();
    release(); // a second call of the same release changes nothing
    await waitFor(() => store.listManifests().length > 0);
    assert.ok(Date.now() - endedAt >= 100, 'not before the release delay');
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }]);
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m.rootHash, retention: 'baseline' }]);
  });

  it('holdManifestLater: holds are counted: an attempt that ends does not arm the write while a retried one still holds it', async () => {
    const at = join(dir, 'later-held-twice');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(10);
    await baselineLater(store, m, async () => undefined, 50);
    const first = store.holdManifestLater(m.rootHash, 20, 60_000);
    const retried = store.holdManifestLater(m.rootHash, 20, 60_000);
    first();
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(store.listManifests(), [], 'still held by the retried attempt');
    retried();
    await waitFor(() => store.listManifests().length > 0);
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }]);
    await store.close();
  });

  it('holdManifestLater: a hold never outlasts its cap, and a store closed while held writes at its close', async () => {
    const capped = join(dir, 'later-held-cap');
    const store = await ChunkStore.open(capped);
    const m = await manifestOf(11);
    await baselineLater(store, m, async () => undefined, 60_000);
    store.holdManifestLater(m.rootHash, 60_000, 100); // never released
    await waitFor(() => store.listManifests().length > 0);
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }], 'written at the cap');
    await store.close();

    const at = join(dir, 'later-held-close');
    const again = await ChunkStore.open(at);
    const m2 = await manifestOf(9);
    await baselineLater(again, m2, async () => undefined, 50);
    again.holdManifestLater(m2.rootHash, 50, 60_000);
    await again.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m2.rootHash, retention: 'baseline' }]);
  });

  it('baselineLater: a store closed before the delay writes the manifest at its close', async () => {
    const at = join(dir, 'later-close');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(7);
    assert.equal(await baselineLater(store, m, async () => 'volume written', 60_000), 'volume written');
    assert.deepEqual(store.listManifests(), []);
    await store.close();
    assert.deepEqual(await heldAfterReopen(at), [{ rootHash: m.rootHash, retention: 'baseline' }]);
  });

  it('baselineLater: a failed work is thrown, and the manifest is stored later all the same', async () => {
    const at = join(dir, 'later-work-fails');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(5);
    await assert.rejects(
      baselineLater(
        store,
        m,
        async () => {
          throw new Error('the patch failed');
        },
        50,
      ),
      /the patch failed/,
    );
    await waitFor(() => store.listManifests().length > 0);
    assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'baseline' }]);
    await store.close();
  });

  it('baselineLater: a manifest the store refuses is reported, not thrown; the round has its result and nothing is stored', async () => {
    const at = join(dir, 'later-bad');
    const store = await ChunkStore.open(at);
    const m = await manifestOf(6);
    const bad = { ...m, chunks: m.chunks.map((c, i) => (i === 1 ? { ...c, hash: m.chunks[0]!.hash } : c)) };
    const warned: string[] = [];
    const warn = console.warn;
    console.warn = (msg: string) => void warned.push(String(msg));
    try {
      assert.equal(await baselineLater(store, bad, async () => 'volume written', 20), 'volume written');
      await waitFor(() => warned.length > 0);
    } finally {
      console.warn = warn;
    }
    assert.match(warned[0]!, /could not keep the final image [0-9a-f]{12} as baseline; the next round to this volume extracts it whole/);
    assert.deepEqual(store.listManifests(), []);
    await store.close();
  });
});

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(done(), 'in time');
}
