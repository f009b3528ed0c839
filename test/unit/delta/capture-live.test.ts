/**
 * Capturing a directory volume while the workload appends to it (a pre-copy round): tar alone
 * refuses a file whose size changes under it; the capture must still produce a valid image, of a
 * point-in-time copy, and leave no scratch behind.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CHUNKER_PRESETS } from '../../../core/chunking/params';
import { SourceImages } from '../../../agent/capture/source-images';
import { seededBytes } from './seeded-bytes';

const root = mkdtempSync(join(tmpdir(), 'fedflow-capture-live-'));

describe('capture of a volume that is being written', () => {
  after(() => rmSync(root, { recursive: true, force: true }));

  it('succeeds while a file grows under it, and leaves no scratch', async () => {
    const vol = join(root, 'vol');
    mkdirSync(vol);
    writeFileSync(join(vol, 'data.log'), seededBytes((32 << 20) + 77, 7));
    writeFileSync(join(vol, 'meta.json'), '{"keys": 1}');
    const images = new SourceImages(join(root, 'images'));
    // Append ~16 KiB every turn of the event loop or so for as long as the capture runs.
    let writes = 0;
    let running = true;
    const writer = (async () => {
      // An odd size: tar notices growth only when its last read has room past the size it stat()ed.
      const block = seededBytes((16 << 10) + 123, 9);
      while (running) {
        appendFileSync(join(vol, 'data.log'), block);
        writes++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      const { manifest } = await images.capture('vol', vol, CHUNKER_PRESETS.internet);
      assert.ok(manifest.totalBytes >= 32 << 20, `image of ${manifest.totalBytes} bytes`);
      assert.ok(images.get(manifest.rootHash), 'the image is recorded');
    } finally {
      running = false;
      await writer;
    }
    assert.ok(writes > 0, 'the volume was written during the capture');
    // The image's metadata is written after the capture returns: wait for it before looking.
    await images.close();
    assert.deepEqual(readdirSync(join(root, 'images')).filter((n) => n.startsWith('.')), [], 'no scratch left');
  });

  it('a crash mid-capture leaves scratch that the next start removes', () => {
    const dir = join(root, 'images2');
    mkdirSync(join(dir, '.snapshot-1-2'), { recursive: true });
    writeFileSync(join(dir, '.capture-1-2-3.img'), 'partial');
    new SourceImages(dir);
    assert.deepEqual(readdirSync(dir), []);
  });
});
