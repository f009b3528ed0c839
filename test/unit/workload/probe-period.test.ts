/**
 * The runner's health-check timing (agent/workload/runner.ts untilNextProbe): periodSeconds from
 * one check's start to the next's, as Kubernetes times probes, never back to back. Pure arithmetic;
 * the same timing with real processes is in test/integration/workload-runner.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { untilNextProbe } from '../../../agent/workload/runner';

test('health checks: the wait before the next is what is left of the period since the last one began, at least a quarter of it', () => {
  // periodSeconds 0.02 (20 ms); the last check began at t = 100.
  assert.equal(untilNextProbe(100, 0.02, 106), 14, 'a 6 ms check: the next begins 20 ms after it did');
  assert.equal(untilNextProbe(100, 0.02, 100), 20);
  assert.equal(untilNextProbe(100, 0.02, 118), 5, 'an 18 ms check: a quarter period, not 2 ms');
  assert.equal(untilNextProbe(100, 0.02, 160), 5, 'a check longer than the period: still a quarter period apart');
  assert.equal(untilNextProbe(100, 0.02, 40), 20, 'a clock that went back: never more than the period');
  assert.equal(untilNextProbe(0, 1, 300), 700);
});
