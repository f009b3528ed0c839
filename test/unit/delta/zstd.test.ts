import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { zstdCompress, zstdDecompress, zstdFrameContentSize } from '../../../agent/transfer/zstd';
import { seededBytes } from './seeded-bytes';

const text = Buffer.from('site=dc:paris op=put key=k42 status=200 latency_ms=12\n'.repeat(1200));

/**
 * Frames zstd-napi 0.0.13 (the native build this replaced) wrote for `text`: what agents from before
 * the switch send. They must still decode; today's frames are byte for byte the same (same libzstd,
 * 1.5.7). Should a later Node bundle another libzstd, the bytes may change while staying decodable:
 * then only the equality below needs a new pin, never the decoding.
 */
const ZSTD_NAPI_FRAMES: Record<number, string> = {
  3: '28b52ffd6020fc0502006403736974653d64633a7061726973206f703d707574206b65793d6b3432207374617475733d323030206c6174656e63795f6d733d31320a010076cecfba8202',
  19: '28b52ffd6020fce5010062430c11b03b384a57d726941630ce89940212149440c5fa2ad1b07e561982aec3e7f7d4913676ca876e5d4b478f1d3167fb9107010076cecfba8202',
};

test('frames from the previous library (zstd-napi) decode, and ours are the same bytes', () => {
  for (const [level, hex] of Object.entries(ZSTD_NAPI_FRAMES)) {
    const frame = Buffer.from(hex, 'hex');
    assert.equal(zstdFrameContentSize(frame), text.length);
    assert.deepEqual(zstdDecompress(frame, text.length), text);
    assert.equal(zstdCompress(text, Number(level)).toString('hex'), hex, `level ${level}`);
  }
});

test('every frame records its content size, whatever the input size (1, 2 and 4 byte size fields)', () => {
  for (const n of [0, 1, 255, 256, 65791, 65792, 300_000, 3 << 20]) {
    const data = Buffer.from(seededBytes(n, 11));
    data.fill(0x41, n >> 1); // half random, half compressible
    for (const level of [1, 19]) {
      const frame = zstdCompress(data, level);
      assert.equal(zstdFrameContentSize(frame), n, `${n} bytes at level ${level}`);
      assert.deepEqual(zstdDecompress(frame, n), data);
    }
  }
});

test('the header parser reads every Frame_Content_Size form of RFC 8878, and refuses what is not a frame header', () => {
  const magic = [0x28, 0xb5, 0x2f, 0xfd];
  const frame = (...bytes: number[]) => Uint8Array.from([...magic, ...bytes]);
  assert.equal(zstdFrameContentSize(frame(0x20, 200)), 200); // single segment, 1-byte size
  assert.equal(zstdFrameContentSize(frame(0x60, 0x00, 0x01)), 256 + 256); // 2-byte size, offset by 256
  assert.equal(zstdFrameContentSize(frame(0x80, 0x40, 0x01, 0x02, 0x03, 0x04)), 0x04030201); // window byte, 4-byte size
  assert.equal(zstdFrameContentSize(frame(0xc2, 0x40, 0xaa, 0xbb, 1, 0, 0, 0, 1, 0, 0, 0)), 2 ** 32 + 1); // window, 2-byte dict id, 8-byte size
  assert.equal(zstdFrameContentSize(frame(0x00, 0x40)), null); // no size declared
  assert.equal(zstdFrameContentSize(frame(0x28, 200)), null); // reserved bit set
  assert.equal(zstdFrameContentSize(frame(0x80, 0x40, 0x01)), null); // truncated size field
  assert.equal(zstdFrameContentSize(Uint8Array.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), null); // skippable frame
  assert.equal(zstdFrameContentSize(new Uint8Array(3)), null);
});

test('decompression never produces more than it was allowed', () => {
  const frame = zstdCompress(text, 3);
  assert.throws(() => zstdDecompress(frame, text.length - 1), /larger than/);
});

const ZSTD_CLI = '/usr/bin/zstd';
test('the zstd command-line tool reads our frames, and we read its', { skip: !existsSync(ZSTD_CLI) && `${ZSTD_CLI} is missing (scripts/system-deps.sh installs it)` }, () => {
  const data = Buffer.concat([text, Buffer.from(seededBytes(70_000, 3))]);
  const ours = zstdCompress(data, 19);
  const byCli = spawnSync(ZSTD_CLI, ['-d', '-c', '-q'], { input: ours, maxBuffer: 1 << 24 });
  assert.equal(byCli.status, 0, String(byCli.stderr));
  assert.deepEqual(byCli.stdout, data);
  // Piped input has no known size, so the CLI's frame may leave the size out: decode bounded anyway.
  const theirs = spawnSync(ZSTD_CLI, ['-3', '-c', '-q'], { input: data, maxBuffer: 1 << 24 });
  assert.equal(theirs.status, 0, String(theirs.stderr));
  assert.deepEqual(zstdDecompress(theirs.stdout, data.length), data);
});
