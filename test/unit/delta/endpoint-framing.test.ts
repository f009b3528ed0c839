/**
 * Chunk frames stay whole when the socket's buffer fills: many small chunks sent uncompressed in
 * one batch fill it between a frame's header and its bytes (a server that then skipped the
 * chunk's bytes desynchronised the stream; the client saw a reply "ended after k of n chunks").
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { SourceImages } from '../../../agent/capture/source-images';
import { fetchManifest, pullMissingChunks } from '../../../agent/transfer/client';
import { newTransferStats, startTransferServer } from '../../../agent/transfer/server';
import { claimsFor, issueToken } from '../../../agent/transfer/token';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 3);

for (const codec of ['none', 'lz4'] as const) {
  test(`a batch of thousands of small ${codec} chunks arrives whole and in order`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-framing-'));
    const file = join(dir, 'vol.img');
    const bytes = Buffer.from(seededBytes(3_000_000, 41));
    writeFileSync(file, bytes);
    const images = new SourceImages(join(dir, 'images'));
    const { manifest } = await images.capture('vol', file, { minSize: 256, avgSize: 1024, maxSize: 4096 }, { inPlace: true });
    assert.ok(manifest.chunks.length > 2000, `${manifest.chunks.length} chunks`);
    const stats = newTransferStats();
    const server = await startTransferServer({ site: 'src', images, secret: SECRET, stats });
    try {
      const token = issueToken(SECRET, claimsFor(manifest.rootHash, 'src', 'dst', Date.now(), 600));
      const store = await ChunkStore.open(join(dir, 'store'));
      const m = await fetchManifest(server.url, manifest.rootHash, token);
      const f = await pullMissingChunks({ endpoint: server.url, root: m.rootHash, token, manifest: m, store, plan: { codec: { codec }, streams: 2, batchBytes: 4 << 20 } });
      assert.equal(f.corruptRefetched, 0);
      await store.putManifest(m, 'pinned');
      await store.assemble(m.rootHash, join(dir, 'out.img'));
      assert.equal(createHash('sha256').update(readFileSync(join(dir, 'out.img'))).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
    } finally {
      await server.close();
      await images.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
