import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DC_MAX_RTT_MS,
  DC_MIN_LOW_MBPS,
  INITIAL_POLICY_STATE,
  INTERNET_MAX_LOW_MBPS,
  INTERNET_MIN_RTT_MS,
  Mode,
  decideMode,
  type LinkPrediction,
  type PolicyState,
} from '../../../core/mode-policy';
import { chooseZstdLevel } from '../../../core/zstd-levels';

const trusted = (id: string) => ({ id, trust: 'trusted' as const });
const untrusted = (id: string) => ({ id, trust: 'untrusted' as const });
const FAST: LinkPrediction = { meanMbps: 20_000, lowMbps: 15_000, rttMs: 0.4, source: 'onnx' };
const SLOW: LinkPrediction = { meanMbps: 20, lowMbps: 12, rttMs: 80, source: 'onnx' };
const MIDDLE: LinkPrediction = { meanMbps: 5_000, lowMbps: 3_000, rttMs: 20, source: 'onnx' };
const GiB = 2 ** 30;

function decide(prediction: LinkPrediction, state: PolicyState = INITIAL_POLICY_STATE) {
  return decideMode({ prediction, source: trusted('dc:paris'), target: trusted('dc:lyon'), bytes: 10 * GiB, state });
}

test('thresholds: fast short -> datacenter, slow or long -> internet, in between -> hybrid', () => {
  assert.equal(decide(FAST).mode, Mode.datacenter);
  assert.equal(decide(SLOW).mode, Mode.internet);
  assert.equal(decide(MIDDLE).mode, Mode.hybrid);
  assert.equal(decide({ ...FAST, rttMs: INTERNET_MIN_RTT_MS + 1 }).mode, Mode.internet);
  assert.equal(decide({ ...FAST, rttMs: DC_MAX_RTT_MS + 1 }).mode, Mode.hybrid);
  assert.equal(decide({ ...FAST, lowMbps: DC_MIN_LOW_MBPS - 1 }).mode, Mode.hybrid);
  assert.equal(decide({ ...MIDDLE, lowMbps: INTERNET_MAX_LOW_MBPS - 1 }).mode, Mode.internet);
  // An unmeasured RTT cannot prove a short link.
  assert.equal(decide({ ...FAST, rttMs: null }).mode, Mode.hybrid);
});

test('an alternating link does not flap: at most one change over 20 evaluations', () => {
  let state = INITIAL_POLICY_STATE;
  const modes: string[] = [];
  for (let i = 0; i < 20; i++) {
    const d = decide(i % 2 === 0 ? FAST : SLOW, state);
    state = d.state;
    modes.push(d.mode);
  }
  const changes = modes.filter((m, i) => i > 0 && m !== modes[i - 1]).length;
  assert.ok(changes <= 1, `mode changed ${changes} times: ${modes.join(',')}`);
  // A link that keeps changing ends up in hybrid, which is what hybrid is for.
  assert.equal(modes[modes.length - 1], Mode.hybrid);
});

test('a lasting change switches after the confirmations, and the reason says so', () => {
  let d = decide(FAST);
  assert.equal(d.mode, Mode.datacenter);
  d = decide(MIDDLE, d.state);
  assert.equal(d.mode, Mode.datacenter);
  assert.match(d.reason, /kept/);
  d = decide(MIDDLE, d.state);
  assert.equal(d.mode, Mode.hybrid);
  assert.match(d.reason, /switched from datacenter/);
});

test('a link hovering just under the datacenter threshold keeps datacenter (band hysteresis)', () => {
  let d = decide(FAST);
  for (let i = 0; i < 5; i++) {
    d = decide({ ...FAST, lowMbps: DC_MIN_LOW_MBPS * 0.9 }, d.state);
    assert.equal(d.mode, Mode.datacenter);
  }
});

test('an explicit mode override is honoured and recorded as an override', () => {
  const d = decideMode({ prediction: FAST, source: trusted('a'), target: trusted('b'), bytes: GiB, override: Mode.internet });
  assert.equal(d.mode, Mode.internet);
  assert.equal(d.override, true);
  assert.equal(d.linkMode, Mode.datacenter);
  assert.match(d.reason, /override/);
  assert.equal(d.plan.codec, 'zstd');
  assert.equal(decide(FAST).override, false);
});

test('an untrusted site forces internet at once, with the reason and the inputs recorded', () => {
  let state = decide(FAST).state;
  const d = decideMode({ prediction: FAST, source: trusted('dc:paris'), target: untrusted('aws:us-east-1'), bytes: GiB, state });
  state = d.state;
  assert.equal(d.mode, Mode.internet);
  assert.equal(d.override, false);
  assert.match(d.reason, /'aws:us-east-1' is untrusted/);
  assert.match(d.reason, /20\.0 Gbit\/s/);
  assert.deepEqual(d.inputs.prediction, FAST);
  assert.equal(d.inputs.target.trust, 'untrusted');
  assert.equal(d.inputs.bytes, GiB);
  assert.equal(state.mode, Mode.internet);
});

test('property: any untrusted site gives internet, whatever the link and state', () => {
  const pred = fc.record({
    meanMbps: fc.double({ min: 0.01, max: 1e6, noNaN: true }),
    lowFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    rttMs: fc.option(fc.double({ min: 0, max: 1000, noNaN: true })),
  });
  fc.assert(
    fc.property(pred, fc.constantFrom(Mode.datacenter, Mode.hybrid, Mode.internet, null), fc.boolean(), (p, prev, which) => {
      const prediction = { meanMbps: p.meanMbps, lowMbps: p.meanMbps * p.lowFrac, rttMs: p.rttMs };
      const state = { ...INITIAL_POLICY_STATE, mode: prev };
      const d = decideMode({
        prediction,
        source: which ? untrusted('a') : trusted('a'),
        target: which ? trusted('b') : untrusted('b'),
        bytes: GiB,
        state,
      });
      return d.mode === Mode.internet && d.plan.streams >= 8 && Number.isFinite(d.plan.estimatedSeconds);
    }),
  );
});

test('plans: datacenter uses lz4 and large chunks; internet zstd, more streams, higher level on slower links', () => {
  const dc = decide(FAST).plan;
  assert.equal(dc.codec, 'lz4');
  assert.equal(dc.chunkPreset, 'large');
  const slow = decide(SLOW).plan;
  const slower = decide({ ...SLOW, meanMbps: 5, lowMbps: 3 }).plan;
  assert.equal(slow.codec, 'zstd');
  assert.ok(slower.level > slow.level, `${slower.level} at 5 Mbit/s, ${slow.level} at 20`);
  assert.equal(slow.level, chooseZstdLevel(SLOW.meanMbps), 'the level follows the predicted mean through the measured speed table');
  assert.ok(slow.streams >= dc.streams);
  // 10 GiB at 20 Mbit/s is about 72 minutes.
  assert.ok(Math.abs(slow.estimatedSeconds - (10 * GiB * 8) / 20e6) < 1);
  assert.ok(slow.estimatedSecondsLow > slow.estimatedSeconds);
});
