/**
 * Manifest deltas over a real transfer server on loopback: the target names manifests it holds,
 * the source answers with a delta against one it knows, and whatever comes is checked against the
 * root the token names. Unknown bases fall back to the full manifest; a tampered delta fails the
 * root check and is replaced by the full manifest, or fails the fetch if that is bad too.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceImages } from '../../../agent/capture/source-images';
import { ChunkCorruptError, fetchManifest, type ManifestFetchInfo } from '../../../agent/transfer/client';
import { startTransferServer } from '../../../agent/transfer/server';
import { claimsFor, issueToken } from '../../../agent/transfer/token';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 9);
const PARAMS = { minSize: 1024, avgSize: 4096, maxSize: 16384 };
const token = (root: string) => issueToken(SECRET, claimsFor(root, 'src', 'dst', Date.now(), 600));

describe('manifest delta over loopback', () => {
  let dir: string;
  let images: SourceImages;
  let oldM: Manifest;
  let newM: Manifest;
  let url: string;
  let close: () => Promise<void>;
  let tamper: (bytes: Uint8Array, base: string | undefined) => void = () => undefined;
  const held = new Map<string, Manifest>();
  const loadBase = async (r: string) => held.get(r);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-mdelta-'));
    images = new SourceImages(join(dir, 'images'));
    const old = Buffer.from(seededBytes(800_000, 11));
    writeFileSync(join(dir, 'old.img'), old);
    oldM = (await images.capture('vol', join(dir, 'old.img'), PARAMS)).manifest;
    // The next round: 30 KB inserted in the middle. The old round's image is released, as the
    // sync workflow releases each round's image; its manifest stays known to the source.
    const next = Buffer.concat([old.subarray(0, 400_000), Buffer.from(seededBytes(30_000, 12)), old.subarray(400_000)]);
    writeFileSync(join(dir, 'new.img'), next);
    newM = (await images.capture('vol', join(dir, 'new.img'), PARAMS)).manifest;
    await images.release(oldM.rootHash);
    assert.equal(images.get(oldM.rootHash), undefined);
    assert.equal(images.manifestOf(oldM.rootHash)?.rootHash, oldM.rootHash);
    held.set(oldM.rootHash, oldM);
    const server = await startTransferServer({ site: 'src', images, secret: SECRET, tamperManifest: (b, base) => tamper(b, base) });
    url = server.url;
    close = server.close;
  });
  after(async () => {
    await close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a delta against a base both sides hold: the same manifest in a fraction of the bytes', async () => {
    tamper = () => undefined;
    let info: ManifestFetchInfo | undefined;
    const m = await fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { bases: [oldM.rootHash], loadBase, onFetched: (i) => (info = i) });
    assert.deepEqual(m, newM);
    assert.equal(info?.format, 'binary');
    assert.equal(info?.baseRoot, oldM.rootHash);
    assert.equal(info?.fellBack, undefined);
    let plain: ManifestFetchInfo | undefined;
    await fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { onFetched: (i) => (plain = i) });
    assert.equal(plain?.format, 'json');
    assert.ok(info!.bodyBytes * 10 < plain!.bodyBytes, `delta ${info!.bodyBytes} bytes; zstd JSON ${plain!.bodyBytes}`);
  });

  it("encodes against the base's index the source keeps, held or just released: the first entry of each hash", () => {
    const first = (m: Manifest) => new Map([...m.chunks.entries()].reverse().map(([i, c]) => [c.hash, i]));
    for (const m of [newM, oldM]) {
      const base = images.deltaBase(m.rootHash);
      assert.ok(base?.index, `the source keeps an index for ${m === newM ? 'the held image' : 'the released one'}`);
      assert.equal(base.manifest.rootHash, m.rootHash);
      assert.deepEqual(new Map([...(base.index as Map<string, number>)]), first(m));
    }
  });

  it('falls back to the full manifest when the source does not know the base named', async () => {
    tamper = () => undefined;
    const unknown = 'ab'.repeat(32);
    let info: ManifestFetchInfo | undefined;
    const m = await fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { bases: [unknown], loadBase, onFetched: (i) => (info = i) });
    assert.deepEqual(m, newM);
    assert.equal(info?.format, 'binary');
    assert.equal(info?.baseRoot, undefined);
  });

  it('a base the target no longer holds makes it fetch the full manifest', async () => {
    tamper = () => undefined;
    let info: ManifestFetchInfo | undefined;
    const m = await fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { bases: [oldM.rootHash], loadBase: async () => undefined, onFetched: (i) => (info = i) });
    assert.deepEqual(m, newM);
    assert.match(info?.fellBack ?? '', /no longer held/);
  });

  it('a tampered delta fails the root check and the full manifest is fetched instead', async () => {
    let tampered = 0;
    tamper = (b, base) => {
      if (base === undefined) return;
      b[b.length - 1]! ^= 0x01; // last entry's digest, or a COPY op's count
      tampered++;
    };
    let info: ManifestFetchInfo | undefined;
    const m = await fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { bases: [oldM.rootHash], loadBase, onFetched: (i) => (info = i) });
    assert.equal(tampered, 1);
    assert.deepEqual(m, newM);
    assert.ok(info?.fellBack, 'the fall-back is reported');
  });

  it('fails the fetch when the full manifest is tampered with too', async () => {
    tamper = (b) => void (b[b.length - 1]! ^= 0x01);
    await assert.rejects(fetchManifest(url, newM.rootHash, token(newM.rootHash), undefined, { bases: [oldM.rootHash], loadBase }), (err: unknown) => err instanceof ChunkCorruptError);
  });
});
