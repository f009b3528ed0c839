/**
 * Focused tests of chunk-store parts that had no test of their own before the split into
 * agent/store/: compaction (eviction.ts), the log rewrite at open (recovery.ts), a manifest left
 * in both retentions by a crash (manifests.ts), scrub, and the durable asynchronous write the
 * store uses (agent/durable-files.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore, decodeIndexLog } from '../../../agent/store/chunk-store';

import { TMP_PREFIX, writeFileDurableAsync } from '../../../agent/durable-files';
import { seededBytes } from './seeded-bytes';
import { manifestOf, rotChunk, sha } from './store-disk';
import { tempDir } from '../../helpers/tmp';

const tmp = () => tempDir('fedflow-store-parts-');
const chunk = (n: number, size = 1000) => Buffer.from(seededBytes(size, n + 1));
const packFiles = (dir: string) => readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));

test('compaction: a sealed pack less than half live has its live chunks moved to a new pack and is deleted; they read back and survive a reopen', async () => {
  const dir = tmp();
  const xs = Array.from({ length: 8 }, (_, k) => chunk(k, 4000));
  {
    const store = await ChunkStore.open(dir);
    await store.putMany(xs.map((x) => ({ hash: sha(x), data: x })));
    assert.equal(await store.deleteMany(xs.slice(2).map(sha)), 6);
    // The pack is still the one group commits append to: compaction leaves it alone.
    await store.compact();
    assert.equal(store.stats().compactedPacks, 0);
    await store.close();
  }
  const [oldPack] = packFiles(dir);
  const store = await ChunkStore.open(dir);
  assert.equal(store.stats().packBytes, 32_000, 'the dead bytes are still in the sealed pack');
  await store.compact();
  const s = store.stats();
  assert.equal(s.compactedPacks, 1);
  assert.equal(s.chunks, 2);
  assert.equal(s.packs, 1);
  assert.equal(s.packBytes, 8000, 'only the live bytes remain');
  assert.ok(!packFiles(dir).includes(oldPack!), 'the compacted pack is deleted');
  assert.deepEqual([await store.get(sha(xs[0]!)), await store.get(sha(xs[1]!))], [xs[0], xs[1]]);
  await store.close();
  const reopened = await ChunkStore.open(dir);
  assert.deepEqual(xs.map((x) => reopened.has(sha(x))), xs.map((_, k) => k < 2));
  assert.deepEqual(await reopened.get(sha(xs[1]!)), xs[1]);
  await reopened.close();
});

test('recovery: an index log with more than twice as many records as live chunks (plus 4096) is rewritten at open with one ADD per live chunk', async () => {
  const dir = tmp();
  const xs = Array.from({ length: 4200 }, (_, k) => chunk(k, 16));
  {
    const store = await ChunkStore.open(dir);
    await store.putMany(xs.map((x) => ({ hash: sha(x), data: x })));
    await store.deleteMany(xs.slice(10).map(sha));
    await store.close();
  }
  const before = decodeIndexLog(readFileSync(join(dir, 'packs', 'index.log'))).records.length;
  assert.equal(before, 4200 + 4190);
  const store = await ChunkStore.open(dir);
  const { records, validBytes } = decodeIndexLog(readFileSync(join(dir, 'packs', 'index.log')));
  assert.equal(records.length, 10);
  assert.ok(records.every((r) => r.type === 1), 'only ADD records');
  assert.deepEqual(records.map((r) => r.hash), xs.slice(0, 10).map(sha), 'in recency order');
  assert.equal(statSync(join(dir, 'packs', 'index.log')).size, validBytes);
  for (const x of xs.slice(0, 10)) assert.deepEqual(await store.get(sha(x)), x);
  assert.equal(store.stats().chunks, 10);
  await store.close();
});

test('a manifest left both pinned and baseline (a crash mid setRetention) is kept pinned on open, with a warning', async () => {
  const dir = tmp();
  const xs = [chunk(1), chunk(2)];
  const m = manifestOf('v', xs);
  {
    const store = await ChunkStore.open(dir);
    await store.putMany(xs.map((x) => ({ hash: sha(x), data: x })));
    await store.putManifest(m, 'pinned');
    await store.close();
  }
  // The rename of setRetention done as a copy: the file is in both directories.
  copyFileSync(join(dir, 'manifests', 'pinned', `${m.rootHash}.ffm`), join(dir, 'manifests', 'baseline', `${m.rootHash}.ffm`));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'pinned' }]);
  assert.ok(store.warnings.some((w) => w.includes('both pinned and baseline')), store.warnings.join('; '));
  assert.ok(!existsSync(join(dir, 'manifests', 'baseline', `${m.rootHash}.ffm`)), 'the baseline copy is removed');
  assert.equal(store.stats().pinnedBytes, 2000);
  await store.close();
});

test('manifests are stored binary (~35 bytes a chunk); a JSON manifest an older store wrote is still read, moved and removed', async () => {
  const dir = tmp();
  const xs = Array.from({ length: 300 }, (_, k) => chunk(k, 100));
  const big = manifestOf('big', xs);
  const legacy = manifestOf('legacy', xs.slice(0, 2));
  const others = [3, 4, 5].map((n) => manifestOf(`other-${n}`, xs.slice(n, n + 2)));
  {
    const store = await ChunkStore.open(dir);
    await store.putMany(xs.map((x) => ({ hash: sha(x), data: x })));
    await store.putManifest(big, 'baseline');
    await store.close();
  }
  const file = join(dir, 'manifests', 'baseline', `${big.rootHash}.ffm`);
  assert.ok(existsSync(file), readdirSync(join(dir, 'manifests', 'baseline')).join(', '));
  assert.ok(statSync(file).size < 40 * xs.length, `binary: ${statSync(file).size} bytes for ${xs.length} chunks`);
  assert.ok(statSync(file).size * 2.5 < JSON.stringify(big).length, 'less than half of the JSON');
  // An older store's manifest file, in JSON.
  writeFileSync(join(dir, 'manifests', 'pinned', `${legacy.rootHash}.json`), JSON.stringify(legacy));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(store.warnings, []);
  assert.deepEqual(new Set(store.listManifests().map((x) => `${x.rootHash}:${x.retention}`)), new Set([`${big.rootHash}:baseline`, `${legacy.rootHash}:pinned`]));
  assert.equal(store.stats().pinnedBytes, 200);
  // Read from disk (other manifests put since push both out of the few kept parsed).
  for (const o of others) await store.putManifest(o, 'baseline');
  assert.deepEqual(await store.getManifest(big.rootHash), big);
  assert.deepEqual(await store.getManifest(legacy.rootHash), legacy);
  for (const o of others) await store.putManifest(o, 'baseline');
  await store.setRetention(legacy.rootHash, 'baseline');
  assert.ok(existsSync(join(dir, 'manifests', 'baseline', `${legacy.rootHash}.json`)), 'moved in its own encoding');
  assert.deepEqual(await store.getManifest(legacy.rootHash), legacy);
  assert.equal(await store.deleteManifest(legacy.rootHash), true);
  assert.ok(!existsSync(join(dir, 'manifests', 'baseline', `${legacy.rootHash}.json`)), 'removed');
  await store.close();
  const again = await ChunkStore.open(dir);
  assert.deepEqual(new Set(again.listManifests().map((x) => x.rootHash)), new Set([big.rootHash, ...others.map((o) => o.rootHash)]));
  assert.deepEqual(await again.getManifest(big.rootHash), big);
  await again.close();
});

test('a manifest file that is not one is ignored with a warning naming it', async () => {
  const dir = tmp();
  const m = manifestOf('v', [chunk(1)]);
  {
    const store = await ChunkStore.open(dir);
    await store.close();
  }
  writeFileSync(join(dir, 'manifests', 'baseline', `${m.rootHash}.ffm`), 'not a binary manifest');
  writeFileSync(join(dir, 'manifests', 'baseline', `${m.rootHash}.txt`), JSON.stringify(m));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(store.listManifests(), []);
  assert.equal(store.warnings.length, 2, store.warnings.join('; '));
  assert.ok(store.warnings.some((w) => w.includes(`${m.rootHash}.ffm`) && /magic/.test(w)), store.warnings.join('; '));
  assert.ok(store.warnings.some((w) => w.includes(`${m.rootHash}.txt`) && /not a manifest file/.test(w)), store.warnings.join('; '));
  await store.close();
});

test('scrub reads every chunk, reports and drops the ones that rotted, and keeps the rest', async () => {
  const dir = tmp();
  const xs = Array.from({ length: 5 }, (_, k) => chunk(k));
  const store = await ChunkStore.open(dir);
  await store.putMany(xs.map((x) => ({ hash: sha(x), data: x })));
  rotChunk(store, sha(xs[3]!), 17);
  const r = await store.scrub();
  assert.deepEqual(r, { chunks: 5, bytes: 5000, corrupt: [sha(xs[3]!)] });
  assert.equal(store.has(sha(xs[3]!)), false);
  assert.equal(store.stats().corruptChunks, 1);
  await store.close();
  const reopened = await ChunkStore.open(dir);
  assert.equal(reopened.has(sha(xs[3]!)), false, 'the drop is durable');
  assert.equal(reopened.stats().chunks, 4);
  await reopened.close();
});

test('writeFileDurableAsync replaces a file whole and leaves no temp file; concurrent writes of one path never share a temp file', async () => {
  const dir = tmp();
  const path = join(dir, 'record.json');
  await writeFileDurableAsync(path, 'one');
  await Promise.all(['two', 'three', 'four'].map((s) => writeFileDurableAsync(path, s)));
  assert.ok(['two', 'three', 'four'].includes(readFileSync(path, 'utf8')));
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith(TMP_PREFIX)), []);
  assert.deepEqual(readdirSync(dir), ['record.json']);
});
