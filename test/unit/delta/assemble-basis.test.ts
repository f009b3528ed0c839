/**
 * assemble() over the target's earlier volume file (its basis): the bytes it shares come from that
 * file, the rest from verified chunk files; a basis changed behind the store's back is not trusted;
 * an in-place update left half done by a crash is marked incomplete and rewritten whole next time.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChunkStore, type AssembleFigures } from '../../../agent/store/chunk-store';
import { buildManifestFromStream } from '../../../agent/capture/manifest-builder';
import type { Manifest } from '../../../core/manifest';
import { orderMovesInPlace, planAssembly } from '../../../core/manifest-basis';
import { seededBytes } from './seeded-bytes';
import { rotChunk } from './store-disk';
import { tempDir } from '../../helpers/tmp';

const PARAMS = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

async function putVolume(store: ChunkStore, data: Uint8Array): Promise<Manifest> {
  const m = await buildManifestFromStream(
    (async function* () {
      yield data;
    })(),
    { volumeId: 'vol', params: PARAMS, onChunk: async (ref, bytes) => void (await store.put(ref.hash, bytes)) },
  );
  await store.putManifest(m, 'baseline');
  return m;
}

function scattered(old: Uint8Array, seed: number): Uint8Array {
  const out = Uint8Array.from(old);
  const fresh = seededBytes(20 * 512, seed);
  for (let k = 0; k < 20; k++) out.set(fresh.subarray(512 * k, 512 * (k + 1)), ((k * 104_729) % (old.length - 512)) & ~511);
  return out;
}

async function setUp() {
  const dir = tempDir('fedflow-basis-');
  const store = await ChunkStore.open(join(dir, 'store'));
  const old = seededBytes(1_000_000, 31);
  const oldM = await putVolume(store, old);
  const vol = join(dir, 'vol.img');
  await store.assemble(oldM.rootHash, vol);
  return { dir, store, old, oldM, vol };
}

const assembleWith = async (store: ChunkStore, root: string, path: string, opts: { inPlace?: boolean } = {}) => {
  let f: AssembleFigures | undefined;
  await store.assemble(root, path, { basisPath: path, ...opts, onFigures: (x) => (f = x) });
  return f!;
};

test('scattered writes: the shared bytes come from the basis, the changed ones from the store', async () => {
  const { store, old, vol } = await setUp();
  const next = scattered(old, 32);
  const m = await putVolume(store, next);
  const f = await assembleWith(store, m.rootHash, vol);
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
  assert.equal(f.basisUsed, true);
  assert.ok(f.storeBytes > 0 && f.storeBytes < next.length / 3, `store bytes ${f.storeBytes}`);
  assert.equal(f.inPlaceBytes + f.movedBytes + f.storeBytes, next.length);
});

test('an insertion, in place: the bytes after it move within the file, only the new chunks come from the store', async () => {
  const { store, old, vol } = await setUp();
  const next = new Uint8Array(old.length + 5000);
  next.set(old.subarray(0, 900_000));
  next.set(seededBytes(5000, 33), 900_000);
  next.set(old.subarray(900_000), 905_000);
  const m = await putVolume(store, next);
  const f = await assembleWith(store, m.rootHash, vol, { inPlace: true });
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
  assert.equal(f.inPlace, true);
  assert.ok(f.movedBytes > 50_000, `moved ${f.movedBytes} bytes within the file`);
  assert.ok(f.storeBytes < 40_000, `wrote ${f.storeBytes} bytes from chunk files`);
  // And back again, in place: the store's record follows each update.
  assert.deepEqual(await store.volumeState(vol), { state: 'complete', rootHash: m.rootHash });
});

test('an insertion before runs of repeated chunks (zeros) moves them as one run with the rest', async () => {
  const { dir, store } = await setUp();
  // Random bytes with two zero runs of 20 maxSize chunks each, so the zero chunk repeats.
  const old = seededBytes(1_000_000, 41);
  old.fill(0, 300_000, 300_000 + 20 * 16_384);
  old.fill(0, 700_000, 700_000 + 10 * 16_384);
  const oldM = await putVolume(store, old);
  const vol = join(dir, 'zeros.img');
  await store.assemble(oldM.rootHash, vol);
  const next = new Uint8Array(old.length + 3000);
  next.set(old.subarray(0, 100_000));
  next.set(seededBytes(3000, 42), 100_000);
  next.set(old.subarray(100_000), 103_000);
  const m = await putVolume(store, next);
  const plan = planAssembly(m.chunks, oldM.chunks);
  const shifted = plan.runs.filter((r) => r.from !== r.offset);
  assert.equal(shifted.length, 1, `runs moved: ${shifted.length} (each repeated zero chunk its own run?)`);
  const f = await assembleWith(store, m.rootHash, vol, { inPlace: true });
  assert.equal(f.inPlace, true);
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
});

test('a deletion, in place: the bytes after it move towards the start, the file shrinks', async () => {
  const { store, old, vol } = await setUp();
  const next = new Uint8Array(old.length - 7000);
  next.set(old.subarray(0, 300_000));
  next.set(old.subarray(307_000), 300_000);
  const m = await putVolume(store, next);
  const f = await assembleWith(store, m.rootHash, vol, { inPlace: true });
  assert.equal(f.inPlace, true);
  assert.ok(f.movedBytes > 500_000, `moved ${f.movedBytes}`);
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
});

test('moves that would read bytes another move already overwrote get no in-place order', () => {
  // Two runs that trade places: whichever goes first destroys the other's source.
  assert.equal(orderMovesInPlace([{ offset: 0, length: 100, from: 100 }, { offset: 100, length: 100, from: 0 }]), undefined);
  // A shift towards the end: the last run first.
  assert.deepEqual(orderMovesInPlace([{ offset: 0, length: 50, from: 0 }, { offset: 60, length: 100, from: 50 }, { offset: 160, length: 100, from: 150 }]), [
    { offset: 160, length: 100, from: 150 },
    { offset: 60, length: 100, from: 50 },
  ]);
});

test('a basis changed behind the store (same size) is not used, and the result is still right', async () => {
  const { store, old, oldM, vol } = await setUp();
  const bytes = readFileSync(vol);
  bytes[10]! ^= 0xff;
  writeFileSync(vol, bytes);
  const next = scattered(old, 34);
  const m = await putVolume(store, next);
  const f = await assembleWith(store, m.rootHash, vol, { inPlace: true });
  assert.equal(f.basisUsed, false);
  assert.match(f.basisRefused ?? '', /changed since this store wrote it/);
  assert.equal(f.storeBytes, next.length);
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
  assert.notEqual(oldM.rootHash, m.rootHash);
});

test('a chunk that rotted in the store fails an in-place update, which leaves the volume marked incomplete; the next assemble rewrites it whole', async () => {
  const { dir, store, old, oldM, vol } = await setUp();
  const next = scattered(old, 35);
  const m = await putVolume(store, next);
  // Rot one chunk the update needs (one that differs from the basis).
  assert.deepEqual(await store.volumeState(vol), { state: 'complete', rootHash: oldM.rootHash });
  const oldHashes = new Set(oldM.chunks.map((c) => c.hash));
  const victim = m.chunks.find((c) => !oldHashes.has(c.hash))!;
  rotChunk(store, victim.hash);
  await assert.rejects(store.assemble(m.rootHash, vol, { basisPath: vol, inPlace: true }), (err: unknown) => (err as Error).name === 'ChunkHashMismatchError');
  assert.deepEqual(await store.volumeState(vol), { state: 'incomplete', rootHash: m.rootHash });
  // Fetch the chunk again (here: put it back), then assemble: the torn file is not trusted as a basis.
  await store.delete(victim.hash);
  await store.put(victim.hash, next.subarray(victim.offset, victim.offset + victim.length));
  const f = await assembleWith(store, m.rootHash, vol, { inPlace: true });
  assert.equal(f.basisUsed, false);
  assert.match(f.basisRefused ?? '', /mid-update/);
  assert.ok(Buffer.from(readFileSync(vol)).equals(Buffer.from(next)));
  assert.deepEqual(await store.volumeState(vol), { state: 'complete', rootHash: m.rootHash });
  assert.ok(!readdirSync(dir).some((n) => n.startsWith('.tmp-')));
  assert.ok(existsSync(vol));
  // A record write cut by a crash leaves a temp file, which the next open removes.
  writeFileSync(join(dir, 'store', 'volumes', '.tmp-cut'), '{');
  const reopened = await ChunkStore.open(join(dir, 'store'));
  assert.equal(reopened.stats().cleanedTempFiles, 1);
  assert.deepEqual(await reopened.volumeState(vol), { state: 'complete', rootHash: m.rootHash });
});
