/**
 * Property tests of FASTCDC_V1 on small parameters (avg 256 B), so that many chunks fit in a
 * few kilobytes. fast-check runs with a fixed seed: the properties are checked on the same
 * cases every run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Chunker, ChunkerParams, CHUNKER_PRESETS, cutAll, compileParams, checkParams, ChunkerParamsError, nextCut } from '../../../core/chunking';
import { nextCutBytewise } from '../../../core/chunking/fastcdc';
import { referenceCuts } from './fastcdc-reference';
import { mixedBytes, seededBytes } from './seeded-bytes';

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };
const RUNS = { seed: 20240611, numRuns: 200 } as const;

const key = (d: Uint8Array, c: { offset: number; length: number }) => Buffer.from(d.subarray(c.offset, c.offset + c.length)).toString('base64');

test('chunks tile the input, and every chunk but the last is within [minSize, maxSize]', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 20_000 }), (seed, len) => {
      const data = seededBytes(len, seed);
      const cuts = cutAll(data, SMALL);
      let next = 0;
      cuts.forEach((c, k) => {
        assert.equal(c.offset, next);
        assert.ok(c.length > 0 && c.length <= SMALL.maxSize, `chunk ${k} has length ${c.length}`);
        if (k < cuts.length - 1) assert.ok(c.length >= SMALL.minSize, `chunk ${k} of ${cuts.length} has length ${c.length} < minSize`);
        next += c.length;
      });
      assert.equal(next, len);
    }),
    RUNS,
  );
});

test('the two-bytes-per-step finder equals the one-byte reference for random valid parameters', () => {
  const params = fc
    .record({ minExp: fc.integer({ min: 6, max: 9 }), avgExp: fc.integer({ min: 8, max: 11 }), maxMul: fc.integer({ min: 2, max: 8 }), minOdd: fc.integer({ min: 0, max: 37 }) })
    .map(({ minExp, avgExp, maxMul, minOdd }) => {
      const avgSize = 2 ** avgExp;
      // Odd and non-power-of-two min/max exercise the single-byte tails of each phase.
      return { minSize: Math.min(2 ** minExp + minOdd, avgSize - 1), avgSize, maxSize: avgSize * maxMul + minOdd };
    })
    .filter((p) => checkParams(p).length === 0);
  fc.assert(
    fc.property(params, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (p, seed) => {
      const data = seededBytes(12_000, seed);
      assert.deepEqual(cutAll(data, p), referenceCuts(data, p));
    }),
    RUNS,
  );
});

test('streaming in blocks of any size gives the same chunks as cutting the whole buffer', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 30 }), (seed, blockSizes) => {
      const total = blockSizes.reduce((a, b) => a + b, 0);
      const data = seededBytes(total, seed);
      const chunker = new Chunker(SMALL);
      const got: { offset: number; length: number; bytes: string }[] = [];
      let at = 0;
      for (const size of blockSizes) {
        for (const c of chunker.push(data.subarray(at, at + size))) got.push({ offset: c.offset, length: c.length, bytes: Buffer.from(c.bytes).toString('base64') });
        at += size;
        assert.ok(chunker.pendingBytes < SMALL.maxSize, `chunker holds ${chunker.pendingBytes} pending bytes; at most maxSize - 1 expected`);
      }
      for (const c of chunker.finish()) got.push({ offset: c.offset, length: c.length, bytes: Buffer.from(c.bytes).toString('base64') });
      const want = cutAll(data, SMALL).map((c) => ({ ...c, bytes: key(data, c) }));
      assert.deepEqual(got, want);
    }),
    RUNS,
  );
});

/**
 * Locality of edits. Chunks ending at or before the edit are untouched (cutting reads no byte past
 * a cut). After the edit the chunkers re-synchronise as soon as they share a cut; that is
 * probabilistic, and over 3000 trials the worst distance seen was 3.8 x maxSize, so "far after"
 * here means 8 x maxSize past the edit.
 */
const FAR = 8 * SMALL.maxSize;
test('inserting or deleting bytes in the middle changes only the chunks near the edit', () => {
  const edit = fc.record({
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    at: fc.integer({ min: 0, max: 30_000 }),
    removed: fc.integer({ min: 0, max: 2_000 }),
    inserted: fc.integer({ min: 0, max: 2_000 }),
  });
  fc.assert(
    fc.property(edit, ({ seed, at, removed, inserted }) => {
      const a = seededBytes(30_000 + 2 * FAR, seed);
      const ins = seededBytes(inserted, seed ^ 0x5bd1e995 || 1);
      const b = new Uint8Array(a.length - removed + inserted);
      b.set(a.subarray(0, at));
      b.set(ins, at);
      b.set(a.subarray(at + removed), at + inserted);
      const shift = inserted - removed;
      const cutsA = cutAll(a, SMALL);
      const inB = new Set(cutAll(b, SMALL).map((c) => `${c.offset}:${key(b, c)}`));
      for (const c of cutsA) {
        if (c.offset + c.length <= at) {
          assert.ok(inB.has(`${c.offset}:${key(a, c)}`), `chunk at ${c.offset} ends before the edit at ${at} but changed`);
        } else if (c.offset >= at + removed + FAR) {
          assert.ok(inB.has(`${c.offset + shift}:${key(a, c)}`), `chunk at ${c.offset}, ${c.offset - at - removed} bytes after the edit, is not in the edited chunking at ${c.offset + shift}`);
        }
      }
    }),
    { ...RUNS, numRuns: 150 },
  );
});

test('invalid parameters are refused with every problem named', () => {
  assert.throws(() => compileParams({ minSize: 10, avgSize: 300, maxSize: 200 }), (err: unknown) => {
    assert.ok(err instanceof ChunkerParamsError);
    assert.match(err.message, /minSize is 10; it must be an integer in \[64, 1048576\]/);
    assert.match(err.message, /avgSize is 300; it must be a power of two/);
    assert.match(err.message, /minSize < avgSize < maxSize; got 10, 300, 200/);
    return true;
  });
});

test('nextCut never reads before start nor past end', () => {
  // Poison the bytes outside [start, end): the cut must not change.
  const data = seededBytes(10_000, 99);
  const p = compileParams(SMALL);
  const padded = new Uint8Array(data.length + 2000).fill(0);
  padded.set(data, 1000);
  const want = nextCut(data, 0, data.length, p);
  // Every alignment of start: the word path reads whole words, part of which may lie outside.
  for (const lead of [1000, 1001, 1002, 1003]) {
    padded.fill(0);
    padded.set(data, lead);
    for (const fill of [0, 0xff, 0x5a]) {
      padded.fill(fill, 0, lead);
      padded.fill(fill, lead + data.length);
      assert.equal(nextCut(padded, lead, lead + data.length, p) - lead, want, `start at ${lead}, outside bytes 0x${fill.toString(16)}`);
    }
  }
});

/** cutAll through nextCutBytewise: the yardstick for the word path. */
function cutAllBytewise(buf: Uint8Array, params: ChunkerParams): { offset: number; length: number }[] {
  const p = compileParams(params);
  const cuts: { offset: number; length: number }[] = [];
  for (let start = 0; start < buf.length; ) {
    const end = nextCutBytewise(buf, start, buf.length, p);
    cuts.push({ offset: start, length: end - start });
    start = end;
  }
  return cuts;
}

/** `data` copied into a fresh ArrayBuffer at byte offset `lead`, as a Uint8Array view. */
function atOffset(data: Uint8Array, lead: number): Uint8Array {
  const view = new Uint8Array(new ArrayBuffer(lead + data.length + 5), lead, data.length);
  view.set(data);
  return view;
}

test('the word path equals the bytewise path at every byte offset in the ArrayBuffer (presets)', () => {
  const inputs = [seededBytes(1 << 20, 0x9e3779b9), mixedBytes(1_200_000, 42)];
  for (const [name, p] of Object.entries(CHUNKER_PRESETS)) {
    for (const data of inputs) {
      const want = cutAllBytewise(data, p);
      for (let lead = 0; lead < 8; lead++) assert.deepEqual(cutAll(atOffset(data, lead), p), want, `preset ${name}, byte offset ${lead}`);
    }
  }
});

test('the word path equals the bytewise path for random parameters, offsets and windows', () => {
  const cases = fc.record({
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    lead: fc.integer({ min: 0, max: 11 }),
    start: fc.integer({ min: 0, max: 3000 }),
    len: fc.integer({ min: 0, max: 9000 }),
    minOdd: fc.integer({ min: 0, max: 37 }),
    avgExp: fc.integer({ min: 8, max: 11 }),
  });
  fc.assert(
    fc.property(cases, ({ seed, lead, start, len, minOdd, avgExp }) => {
      const params = { minSize: 64 + minOdd, avgSize: 2 ** avgExp, maxSize: 4 * 2 ** avgExp + minOdd };
      const p = compileParams(params);
      const data = atOffset(seededBytes(start + len, seed), lead);
      assert.equal(nextCut(data, start, start + len, p), nextCutBytewise(data, start, start + len, p));
      assert.equal(nextCut(data, start, data.length, p), nextCutBytewise(data, start, data.length, p));
    }),
    { ...RUNS, numRuns: 400 },
  );
});

test('all-zero input of any length: maxSize chunks, then the remainder (every preset)', () => {
  fc.assert(
    fc.property(fc.constantFrom(...(Object.values(CHUNKER_PRESETS) as ChunkerParams[])), fc.integer({ min: 0, max: 600_000 }), (p, len) => {
      const lengths = cutAll(new Uint8Array(len), p).map((c) => c.length);
      const full = Math.floor(len / p.maxSize);
      const rest = len - full * p.maxSize;
      assert.deepEqual(lengths, [...Array<number>(full).fill(p.maxSize), ...(rest > 0 ? [rest] : [])]);
    }),
    { ...RUNS, numRuns: 60 },
  );
});
