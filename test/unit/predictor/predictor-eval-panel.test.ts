import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COLORS } from '../../../bench/predictor-plot';
import { panelOf } from '../../../bench/predictor-eval';
import type { WalkPoint, WalkResult } from '../../../bench/predictor-eval-walk';

/** A walk of `n` points whose adaptive mean is `tag` everywhere, so a panel shows which walk it drew. */
function walk(n: number, tag: number): WalkResult {
  const point = (j: number): WalkPoint => ({
    index: j,
    timeMs: j * 1000,
    actual: 1,
    adaptive: tag,
    adaptiveLow: tag / 2,
    onnx: 1,
    onnxLow: 1,
    baselines: { 'last-value': 1, 'harmonic-mean-5': 1, 'ewma-0.5': 1, 'ewma-0.2': 1 },
    lowFrom: 'conformal',
    experts: [],
  });
  return { points: Array.from({ length: n }, (_, j) => point(j)), fallbacks: 0, agent: null };
}

const drawn = (walks: WalkResult[]) => panelOf(walks)?.series.find((s) => s.color === COLORS.model)?.values;

test("the plot draws the adaptive mean of a link from the second half of the agent's links, not its first link", () => {
  // Links 0-3: the first long enough is 0, but the panel comes from the second half (2, 3): 2 is too short, so 3.
  const values = drawn([walk(30, 1), walk(30, 2), walk(10, 3), walk(200, 4)]);
  assert.equal(values?.length, 150);
  assert.ok(values.every((v) => v === 4));
  // No long-enough link in the second half: the first long-enough one anywhere; none at all: no panel.
  assert.ok(drawn([walk(10, 1), walk(30, 2), walk(10, 3), walk(10, 4)])?.every((v) => v === 2));
  assert.equal(panelOf([walk(10, 1)]), null);
});
