import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GEAR, GEAR_LS, GEAR_SEED, splitMix64 } from '../../../core/chunking/gear-table';

test('SplitMix64 matches the published reference output for seed 0', () => {
  // java.util.SplittableRandom / Vigna's splitmix64.c: state 0 yields 0xe220a8397b1dcdaf first.
  const [, out] = splitMix64(0n);
  assert.equal(out, 0xe220a8397b1dcdafn);
});

test('the FASTCDC_V1 gear table is pinned: seed, first words and digest', () => {
  assert.equal(GEAR_SEED, 0x666564666c6f7731n);
  assert.equal(GEAR.length, 256);
  assert.deepEqual(Array.from(GEAR.subarray(0, 4)), [0x25c8b139, 0x591e0c50, 0xe78dc191, 0x57b2c23b]);
  const digest = createHash('sha256').update(new Uint8Array(GEAR.buffer, GEAR.byteOffset, 1024)).digest('hex');
  assert.equal(digest, '22551fa9e5381b44649b40c92117bf52e41435225db04121370cc1eea3e99913');
});

test('GEAR_LS is GEAR shifted left by one bit, modulo 2^32', () => {
  for (let b = 0; b < 256; b++) assert.equal(GEAR_LS[b], (GEAR[b]! * 2) % 2 ** 32);
});

test('the gear words are well spread: every bit position is set in roughly half of them', () => {
  for (let bit = 0; bit < 32; bit++) {
    let ones = 0;
    for (const w of GEAR) ones += (w >>> bit) & 1;
    // Binomial(256, 1/2): 5 sigma is +-40.
    assert.ok(ones > 88 && ones < 168, `bit ${bit} is set in ${ones}/256 words; expected about 128`);
  }
});
