/**
 * The endpoint's audit trail of served chunks (agent/transfer/served-log.ts, FEDFLOW_SERVED_LOG):
 * every chunk a pull receives is told once, with its target, image and the how-many-th time it
 * went there; a second pull of the same image by the same target counts 2 for each. Written as
 * JSON lines and read back, a torn last line left out. A real endpoint on loopback.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceImages } from '../../../agent/capture/source-images';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { pullMissingChunks } from '../../../agent/transfer/client';
import { openServedLog, parseServedLog } from '../../../agent/transfer/served-log';
import { startTransferServer, type ServedChunk } from '../../../agent/transfer/server';
import { claimsFor, issueToken } from '../../../agent/transfer/token';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 5);
const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };

describe('served-chunk log', () => {
  let dir: string;
  let images: SourceImages;
  let server: Awaited<ReturnType<typeof startTransferServer>>;
  let manifest: Manifest;
  const told: ServedChunk[] = [];
  let log: ReturnType<typeof openServedLog>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-served-log-'));
    const file = join(dir, 'vol.img');
    writeFileSync(file, Buffer.from(seededBytes(600_000, 7)));
    images = new SourceImages(join(dir, 'images'));
    manifest = (await images.capture('vol', file, PARAMS, { inPlace: true })).manifest;
    log = openServedLog(join(dir, 'audit', 'served.log'));
    server = await startTransferServer({ site: 'src', images, secret: SECRET, onServed: (e) => (told.push(e), log.onServed(e)) });
  });
  after(async () => {
    await server?.close();
    await images?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const pullInto = async (name: string) => {
    const store = await ChunkStore.open(join(dir, name));
    const token = issueToken(SECRET, claimsFor(manifest.rootHash, 'src', 'dst', Date.now(), 600));
    await pullMissingChunks({ endpoint: server.url, root: manifest.rootHash, token, manifest, store, plan: { codec: { codec: 'none' }, streams: 2, batchBytes: 64 << 10 }, to: 'dst' });
    await store.close();
  };

  it('tells every chunk served, with its target and image, counting copies per target and image', async () => {
    const distinct = new Set(manifest.chunks.map((c) => c.hash));
    const t0 = Date.now();
    await pullInto('store-a');
    assert.equal(told.length, distinct.size, 'each distinct chunk once');
    assert.deepEqual(new Set(told.map((e) => e.hash)), distinct);
    for (const e of told) {
      assert.deepEqual({ from: e.from, to: e.to, root: e.root, n: e.n }, { from: 'src', to: 'dst', root: manifest.rootHash, n: 1 });
      assert.ok(e.at >= t0 && e.at <= Date.now());
    }
    // The same target pulls the image again into an empty store: every chunk crosses a second time.
    await pullInto('store-b');
    assert.equal(told.length, 2 * distinct.size);
    assert.ok(told.slice(distinct.size).every((e) => e.n === 2));

    // On disk: the same records, in serve order; a line being written when read is left out.
    await log.close();
    const path = join(dir, 'audit', 'served.log');
    appendFileSync(path, '{"at":1,"from":"src","to":"d');
    assert.deepEqual(parseServedLog(readFileSync(path, 'utf8')), told);
  });
});
