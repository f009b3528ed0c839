/** The pure sha256, canonical bytes and canonical JSON the core signs and hashes. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalBytes } from '../../../core/consensus/canonical-bytes';
import { canonicalJson, digestOf } from '../../../core/consensus/canonical-json';
import { sha256Hex } from '../../../core/consensus/sha256';
import { utf8Bytes } from '../../../core/consensus/utf8';

test('sha256Hex matches node:crypto (FIPS 180-4 vectors and random inputs)', () => {
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => assert.equal(sha256Hex(b), createHash('sha256').update(b).digest('hex'))),
    { seed: 256, numRuns: 500 },
  );
});

test('utf8Bytes matches Buffer for valid strings and refuses lone surrogates', () => {
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => assert.deepEqual(Buffer.from(utf8Bytes(s)), Buffer.from(s, 'utf8'))), { seed: 8, numRuns: 500 });
  assert.throws(() => utf8Bytes('a\ud800'), /lone high surrogate at position 1/);
});

test('canonicalBytes is injective on field lists (no concatenation ambiguity)', () => {
  assert.notDeepEqual(canonicalBytes('d', ['ab', 'c']), canonicalBytes('d', ['a', 'bc']));
  assert.notDeepEqual(canonicalBytes('d', ['1']), canonicalBytes('d', [1]));
  assert.notDeepEqual(canonicalBytes('d1', ['x']), canonicalBytes('d2', ['x']));
  const field = fc.oneof(fc.string(), fc.maxSafeNat());
  fc.assert(
    fc.property(fc.array(field, { maxLength: 5 }), fc.array(field, { maxLength: 5 }), (a, b) => {
      const same = Buffer.from(canonicalBytes('t', a)).equals(Buffer.from(canonicalBytes('t', b)));
      assert.equal(same, JSON.stringify(a) === JSON.stringify(b));
    }),
    { seed: 9, numRuns: 1000 },
  );
  assert.throws(() => canonicalBytes('d', [-1]), /field 0 of 'd' must be a whole number/);
});

test('canonicalJson ignores key order; digestOf is stable', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'] }), '{"a":[true,null,"x"],"b":1}');
  assert.equal(digestOf({ x: 1, y: 2 }), digestOf({ y: 2, x: 1 }));
  assert.throws(() => canonicalJson({ a: Number.NaN }), /\$\.a is NaN/);
});
