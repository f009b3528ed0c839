import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAdaptation } from '../../../bench/adaptation-choice';
import { CANDIDATES } from '../../../models/link-adaptation';

const table = (rows: Record<string, Record<string, number>>) =>
  new Map(Object.entries(rows).map(([d, r]) => [d, new Map(Object.entries(r))]));

test('the nested choice for a dataset ignores that dataset: best worst case on the others, then best mean', () => {
  // 'risky' is best on d1 and d2 but bad on d3; 'safe' is never bad; 'tie' has safe's worst case with a lower mean.
  const improvements = table({
    d1: { risky: 0.2, safe: 0.01, tie: 0.005 },
    d2: { risky: 0.15, safe: 0.02, tie: 0.0 },
    d3: { risky: -0.1, safe: 0.0, tie: 0.0 },
  });
  const { perDataset, overall } = chooseAdaptation(improvements, ['d1', 'd2', 'd3'], ['risky', 'safe', 'tie']);
  assert.equal(perDataset.get('d3'), 'risky'); // chosen on d1 and d2 only, where it leads
  assert.equal(perDataset.get('d1'), 'safe'); // worst case 0 on d2, d3 (risky: -0.1); safe's mean beats tie's
  assert.equal(perDataset.get('d2'), 'safe');
  assert.equal(overall, 'safe');
});

test('without a candidate list the choice is among the adaptation settings, and only those', () => {
  const names = Object.keys(CANDIDATES);
  const last = names[names.length - 1]!;
  const values = (best: string) => Object.fromEntries([...names.map((n) => [n, n === best ? 0.5 : 0]), ['not-a-setting', 9]]);
  const { perDataset, overall } = chooseAdaptation(table({ a: values(last), b: values(last) }), ['a', 'b']);
  assert.equal(overall, last);
  assert.equal(perDataset.get('a'), last);
});
