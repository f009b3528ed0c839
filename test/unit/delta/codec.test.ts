import { test } from 'node:test';
import { compressSync as lz4FlexCompress } from 'lz4-napi';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CodecError, CodecSpec, compressChunk, decompressChunk, packChunk, unpackChunk, CODECS, LZ4_COMPRESSOR } from '../../../agent/transfer/codec';
import { REPO_ROOT } from '../../../agent/site/home';
import { lz4Samples } from '../../helpers/lz4-pack-child';
import { chooseHybridCodec, measureCodec } from '../../../agent/transfer/codec-chooser';
import { chooseZstdLevel, ZSTD_PLAN_LEVELS, ZSTD_SPEED_MBPS } from '../../../core/zstd-levels';
import { seededBytes } from './seeded-bytes';

const text = Buffer.from('site=dc:paris op=put key=k42 status=200 latency_ms=12\n'.repeat(1200));
const random = Buffer.from(seededBytes(64 * 1024, 5));
const specs: CodecSpec[] = [{ codec: 'none' }, { codec: 'lz4' }, { codec: 'zstd', level: 1 }, { codec: 'zstd', level: 3 }, { codec: 'zstd', level: 19 }];

test('every codec round-trips text, random and empty chunks', () => {
  for (const spec of specs) {
    for (const data of [text, random, Buffer.alloc(0)]) {
      const c = compressChunk(data, spec);
      assert.deepEqual(decompressChunk(c, spec.codec, data.length), data, JSON.stringify(spec));
      assert.deepEqual(unpackChunk(packChunk(data, spec), data.length), data);
    }
  }
});

test('lz4 payloads are standard blocks behind a u32 size: they interoperate with lz4_flex both ways', () => {
  const zeros = Buffer.alloc(300 * 1024); // larger than the scratch buffer starts: it must grow
  const mixed = Buffer.concat([text.subarray(0, 20_000), random.subarray(0, 30_000), zeros.subarray(0, 15_000), text.subarray(7)]);
  for (const data of [text, random, zeros, mixed, Buffer.from([7]), text.subarray(0, 13), Buffer.alloc(0)]) {
    const ours = compressChunk(data, { codec: 'lz4' });
    assert.equal(ours.readUInt32LE(0), data.length);
    // What an agent from before the switch to the C compressor sends still unpacks, and vice versa.
    assert.deepEqual(decompressChunk(lz4FlexCompress(data), 'lz4', data.length), data, `lz4_flex payload of ${data.length} bytes`);
    assert.deepEqual(decompressChunk(ours, 'lz4', data.length), data, `C payload of ${data.length} bytes`);
    const packed = packChunk(data, { codec: 'lz4' });
    if (packed[0] === CODECS.lz4) assert.deepEqual(packed.subarray(1), ours);
    else assert.deepEqual(packed, Buffer.concat([Buffer.from([CODECS.none]), data]));
  }
});

test('lz4 compresses with the C library whenever its addon is installed: a failed or stale build is caught here, not just slower', () => {
  let installed = true;
  try {
    createRequire(__filename).resolve('lz4');
  } catch {
    installed = false;
  }
  assert.equal(LZ4_COMPRESSOR, installed && process.env.FEDFLOW_LZ4_COMPRESSOR !== 'lz4-napi' ? 'lz4 (C)' : 'lz4-napi');
  if (installed) assert.doesNotThrow(() => createRequire(__filename)('lz4'), 'the lz4 addon is installed but does not load on this Node (rebuild it: npm rebuild lz4)');
});

test('without the C library (the fallback, lz4-napi), packed chunks unpack the same, and both read each other', () => {
  const child = (env: Record<string, string>) =>
    JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/helpers/lz4-pack-child.ts')], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8' })) as { compressor: string; packed: string[] };
  const fallback = child({ FEDFLOW_LZ4_COMPRESSOR: 'lz4-napi' });
  assert.equal(fallback.compressor, 'lz4-napi');
  const samples = lz4Samples();
  for (const [i, data] of samples.entries()) {
    const theirs = Buffer.from(fallback.packed[i]!, 'hex');
    assert.deepEqual(unpackChunk(theirs, data.length), data, `fallback chunk ${i} of ${data.length} bytes`);
    assert.deepEqual(unpackChunk(packChunk(data, { codec: 'lz4' }), data.length), data);
    // Incompressible chunks go raw either way.
    assert.equal(theirs[0], packChunk(data, { codec: 'lz4' })[0], `codec byte of chunk ${i}`);
  }
});

test('lz4 results do not share the reused scratch buffer', () => {
  const a = compressChunk(text, { codec: 'lz4' });
  const aCopy = Buffer.from(a);
  const p = packChunk(text, { codec: 'lz4' });
  const pCopy = Buffer.from(p);
  compressChunk(Buffer.alloc(200_000, 1), { codec: 'lz4' });
  packChunk(text.subarray(100), { codec: 'lz4' });
  assert.deepEqual(a, aCopy);
  assert.deepEqual(p, pCopy);
});

test('compressible chunks shrink; packing stores incompressible chunks raw', () => {
  for (const spec of specs.filter((s) => s.codec !== 'none')) {
    assert.ok(compressChunk(text, spec).length < text.length / 5, `${JSON.stringify(spec)} should compress repetitive text 5x`);
    const packed = packChunk(random, spec);
    assert.equal(packed[0], CODECS.none);
    assert.equal(packed.length, random.length + 1);
    assert.equal(packChunk(text, spec)[0], CODECS[spec.codec]);
  }
});

test('decompression refuses a payload whose size disagrees with the manifest, and garbage', () => {
  const z = compressChunk(text, { codec: 'zstd', level: 3 });
  assert.throws(() => decompressChunk(z, 'zstd', text.length - 1), /zstd frame claims 64800 bytes; the manifest says 64799/);
  const l = compressChunk(text, { codec: 'lz4' });
  assert.throws(() => decompressChunk(l, 'lz4', 10), /lz4 payload claims 64800 bytes; the manifest says 10/);
  assert.throws(() => decompressChunk(random.subarray(0, 100), 'zstd', 100), CodecError);
  assert.throws(() => unpackChunk(Buffer.from([9, 1, 2]), 2), /codec byte 9; expected one of 0, 1, 2/);
  assert.throws(() => compressChunk(text, { codec: 'zstd', level: 25 }), /zstd level is 25; expected an integer in \[1, 19\]/);
});

test('zstd level for a link: a slower link never gets a lower level, and the extremes follow the measured table', () => {
  let previous = Number.POSITIVE_INFINITY;
  for (let mbps = 0.5; mbps <= 100_000; mbps *= 1.5) {
    const level = chooseZstdLevel(mbps);
    assert.ok(level <= previous, `at ${mbps} Mbit/s level ${level} is above ${previous}, the level for a slower link`);
    previous = level;
  }
  // The compressor must take in headroom 3 x ratio ~2.9 x the link's MB/s.
  assert.equal(chooseZstdLevel(1), 19); // 0.125 MB/s -> 1.1 MB/s: even level 19 (7 MB/s) keeps up
  assert.equal(chooseZstdLevel(100), 9); // 12.5 MB/s -> 111: level 12 (75) does not, level 9 (130) does
  assert.equal(chooseZstdLevel(10_000), 1); // nothing keeps up: the fastest level
  assert.equal(chooseZstdLevel(100, 2), 12); // two cores double every speed: 75 x 2 >= 111
  assert.ok(ZSTD_SPEED_MBPS.every((r, k, a) => k === 0 || r.mbps < a[k - 1]!.mbps), 'speed table must fall with the level');
  assert.deepEqual(ZSTD_SPEED_MBPS.map((r) => r.level), [...ZSTD_PLAN_LEVELS], 'a row for every level the plan picks (and that the bench measures)');
  assert.throws(() => chooseZstdLevel(0), /link speed is 0 Mbit\/s; expected a positive number/);
});

test('hybrid chooser maximises min(codec speed, bandwidth x ratio) (fake measurements)', () => {
  const table: Record<string, { speed: number; ratio: number }> = {
    none: { speed: Number.POSITIVE_INFINITY, ratio: 1 },
    lz4: { speed: 500e6, ratio: 2 },
    'zstd-3': { speed: 200e6, ratio: 3 },
    'zstd-19': { speed: 2e6, ratio: 3.5 },
  };
  const candidates: CodecSpec[] = [{ codec: 'none' }, { codec: 'lz4' }, { codec: 'zstd', level: 3 }, { codec: 'zstd', level: 19 }];
  const measure = (spec: CodecSpec) => table[spec.codec === 'zstd' ? `zstd-${spec.level}` : spec.codec]!;
  const pick = (mbps: number, cores = 1) => chooseHybridCodec([text], mbps, { candidates, measure, cores }).best.name;
  // 1 Mbit/s = 125 kB/s: every codec keeps up, so the best ratio wins.
  assert.equal(pick(1), 'zstd-19');
  // 100 Mbit/s = 12.5 MB/s: zstd-19 (2 MB/s) cannot keep up; zstd-3 gives 37.5 MB/s.
  assert.equal(pick(100), 'zstd-3');
  // 2 Gbit/s = 250 MB/s: zstd-3 is capped at 200, lz4 reaches min(500, 500) = 500.
  assert.equal(pick(2_000), 'lz4');
  // 10 Gbit/s = 1250 MB/s: only 'none' keeps up with the wire.
  assert.equal(pick(10_000), 'none');
  // With 4 cores lz4 does 2000 MB/s, and 1250 x 2 = 2500: lz4 beats none's 1250.
  assert.equal(pick(10_000, 4), 'lz4');
  const all = chooseHybridCodec([text], 100, { candidates, measure });
  assert.deepEqual(all.measured.map((m) => Math.round(m.goodput / 1e6)), [13, 25, 38, 2]);
});

test('hybrid chooser with real measurements: slow link on text compresses, fast link on random data sends raw', () => {
  const slow = chooseHybridCodec([text], 1);
  assert.notEqual(slow.best.spec.codec, 'none');
  assert.ok(slow.best.ratio > 5, `at 1 Mbit/s the chosen ${slow.best.name} should compress text > 5x, got ${slow.best.ratio}`);
  // No codec compresses random bytes, and none is infinitely fast: 'none' must win on a 100 Gbit/s link.
  assert.equal(chooseHybridCodec([random], 100_000).best.name, 'none');
});

test('measureCodec uses the injected clock', () => {
  let t = 0;
  const now = () => (t += 500); // every call half a second later: one pass takes 0.5 s
  const m = measureCodec({ codec: 'zstd', level: 1 }, [text, text], now);
  assert.equal(m.speed, (2 * text.length) / 0.5);
  assert.ok(m.ratio > 5);
  assert.throws(() => measureCodec({ codec: 'lz4' }, []), /no sample bytes/);
});
