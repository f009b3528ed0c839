/**
 * extractVolume: a volume directory captured at the source, its chunks in the target's store,
 * written out at the target straight from the store.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { ChunkHashMismatchError, MissingChunksError } from '../../../agent/store/errors';
import { SourceImages } from '../../../agent/capture/source-images';
import { extractVolume } from '../../../agent/capture/volume-extract';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };

describe('extractVolume', () => {
  let dir: string;
  let images: SourceImages;
  let manifest: Manifest;
  const files: Record<string, Buffer> = {
    'kv.jsonl': Buffer.from(seededBytes(3_000_000, 11)),
    'sub/small.txt': Buffer.from('hello\n'),
    'sub/empty': Buffer.alloc(0),
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-extract-'));
    const vol = join(dir, 'source-vol');
    for (const [name, bytes] of Object.entries(files)) {
      mkdirSync(join(vol, name, '..'), { recursive: true });
      writeFileSync(join(vol, name), bytes);
    }
    images = new SourceImages(join(dir, 'images'));
    ({ manifest } = await images.capture('vol', vol, PARAMS));
    assert.ok(manifest.chunks.length > 20, `a few dozen chunks (got ${manifest.chunks.length})`);
  });
  after(async () => {
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function storeWith(hashes: Set<string>): Promise<ChunkStore> {
    const store = await ChunkStore.open(mkdtempSync(join(dir, 'store-')));
    for (const c of manifest.chunks) if (hashes.has(c.hash)) await store.put(c.hash, (await images.readChunk(manifest.rootHash, c.hash))!);
    return store;
  }

  it('replaces the volume with the image, byte for byte, and leaves no staging behind', async () => {
    const store = await storeWith(new Set(manifest.chunks.map((c) => c.hash)));
    const target = join(dir, 'target-vol');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'stale'), 'from before');
    await extractVolume(store, manifest, target);
    for (const [name, bytes] of Object.entries(files)) assert.ok(readFileSync(join(target, name)).equals(bytes), name);
    assert.equal(existsSync(join(target, 'stale')), false, 'the old volume is gone');
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('staging')), []);
    await store.close();
  });

  it('fails naming the missing chunk, and leaves the old volume in place', async () => {
    const missing = manifest.chunks[Math.floor(manifest.chunks.length / 2)]!.hash;
    const store = await storeWith(new Set(manifest.chunks.map((c) => c.hash).filter((h) => h !== missing)));
    const target = join(dir, 'target-vol-2');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'kept'), 'old volume');
    await assert.rejects(extractVolume(store, manifest, target), (err: unknown) => err instanceof MissingChunksError && err.missing.includes(missing));
    assert.equal(readFileSync(join(target, 'kept'), 'utf8'), 'old volume');
    await store.close();
  });

  it('never writes a chunk whose stored bytes rotted: fails, and leaves the old volume in place', async () => {
    const store = await storeWith(new Set(manifest.chunks.map((c) => c.hash)));
    const victim = manifest.chunks[3]!;
    const at = store.locateChunk(victim.hash)!;
    const fd = openSync(at.path, 'r+');
    writeSync(fd, Buffer.from('rot'), 0, 3, at.offset + 10);
    closeSync(fd);
    const target = join(dir, 'target-vol-3');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'kept'), 'old volume');
    await assert.rejects(extractVolume(store, manifest, target), (err: unknown) => err instanceof ChunkHashMismatchError && err.expected === victim.hash);
    assert.equal(readFileSync(join(target, 'kept'), 'utf8'), 'old volume');
    assert.equal(existsSync(join(target, 'kv.jsonl')), false);
    assert.equal(existsSync(`${target}.staging`), false, 'the half-written staging copy is removed');
    await store.close();
  });

  it('recovers from a crash between the swap renames, and clears stray staging copies', async () => {
    const store = await storeWith(new Set(manifest.chunks.map((c) => c.hash)));
    const target = join(dir, 'target-vol-4');
    // What a crash between "volume -> volume.old" and "staging -> volume" leaves, plus a stray
    // attempt's half-filled staging copy.
    mkdirSync(`${target}.old`, { recursive: true });
    writeFileSync(join(`${target}.old`, 'kept'), 'old volume');
    mkdirSync(`${target}.staging-stray`, { recursive: true });
    writeFileSync(join(`${target}.staging-stray`, 'kv.jsonl'), 'half');
    await extractVolume(store, manifest, target);
    for (const [name, bytes] of Object.entries(files)) assert.ok(readFileSync(join(target, name)).equals(bytes), name);
    // The volume, and the record of the image it holds (for the next round's in-place patch).
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('target-vol-4')), ['target-vol-4', 'target-vol-4.image.json']);
    await store.close();
  });
});
