/**
 * The model is trained on models/features.py and served on models/features.ts:
 * the two must give the same numbers. models/train.py writes the fixture with
 * the Python values; here the TypeScript side recomputes them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FEATURE_NAMES, HORIZON_S, MIN_SAMPLES, WINDOW, features, targetMean } from '../../../models/features';

interface Fixture {
  featureNames: string[];
  window: number;
  horizonS: number;
  minSamples: number;
  cases: { name: string; times: number[]; values: number[]; features: number[] }[];
}

const fixture = JSON.parse(readFileSync(path.join(__dirname, '../../../models/feature-fixture.json'), 'utf8')) as Fixture;

test('constants and feature order match the Python side', () => {
  assert.deepEqual(fixture.featureNames, [...FEATURE_NAMES]);
  assert.equal(fixture.window, WINDOW);
  assert.equal(fixture.horizonS, HORIZON_S);
  assert.equal(fixture.minSamples, MIN_SAMPLES);
  assert.ok(fixture.cases.length >= 10, `fixture has only ${fixture.cases.length} cases`);
});

test('TypeScript features equal the Python features on every fixture case', () => {
  for (const c of fixture.cases) {
    const got = features(c.times, c.values);
    assert.equal(got.length, c.features.length, c.name);
    got.forEach((v, i) => {
      const want = c.features[i]!;
      // Same operations in the same order; only libm differences remain.
      assert.ok(Math.abs(v - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${c.name} ${FEATURE_NAMES[i]}: ts ${v} vs py ${want}`);
    });
  }
});

test('features are scale-free: multiplying a history by 10^4 changes nothing', () => {
  const c = fixture.cases.find((x) => x.times.length >= 40)!;
  const a = features(c.times, c.values);
  const b = features(c.times, c.values.map((v) => v * 1e4));
  // Clamped zeros are the one exception; this case has none.
  assert.ok(c.values.every((v) => v > 1e-3));
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-9, `${FEATURE_NAMES[i]}: ${v} vs ${b[i]}`));
});

test('targetMean averages the samples in (t, t+5s] and refuses an incomplete window', () => {
  const t = [0, 1, 2, 3, 4, 5, 6];
  const v = [1, 2, 3, 4, 5, 6, 7];
  assert.equal(targetMean(t, v, 0), (2 + 3 + 4 + 5 + 6) / 5);
  assert.equal(targetMean(t, v, 1), (3 + 4 + 5 + 6 + 7) / 5);
  assert.equal(targetMean(t, v, 2), null);
});
