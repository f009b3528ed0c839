import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conformalMargin, conformalUpdate, initialConformal } from '../../../models/conformal-low';
import { fixedShareUpdate } from '../../../models/expert-weights';
import { ADAPTATION, EXPERTS, initialAdaptation, scorePoint, type AdaptationState } from '../../../models/link-adaptation';
import { DEFAULT_MODEL_PATH, createPredictor, type PredictorSample } from '../../../models/predictor';

/** Seeded uniform (mulberry32) and standard normal (Box-Muller): the tests are reproducible. */
function rng(seed: number) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

const argmax = (v: readonly number[]) => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

test('fixed share follows the better expert when the best one switches halfway', () => {
  const r = rng(7);
  let state: AdaptationState = initialAdaptation();
  const ewma02 = EXPERTS.indexOf('ewma-0.2');
  const last = EXPERTS.indexOf('last-value');
  // Every expert is off by 30 % in a random direction, except the good one of each half (2 %).
  const step = (i: number, good: number) => {
    const actual = 10;
    const predictions = EXPERTS.map((_, k) => actual * Math.exp((k === good ? 0.02 : 0.3) * (r.uniform() < 0.5 ? -1 : 1)));
    state = scorePoint(state, { timeMs: i * 1000, predictions, modelLowRatio: 0.8, actual });
  };
  for (let i = 0; i < 100; i++) step(i, ewma02);
  assert.equal(EXPERTS[argmax(state.weights)], 'ewma-0.2', `weights after the first half: ${state.weights.map((w) => w.toFixed(3))}`);
  assert.ok(state.weights[ewma02]! > 0.8, `ewma-0.2 weight ${state.weights[ewma02]}`);
  for (let i = 100; i < 200; i++) step(i, last);
  assert.equal(EXPERTS[argmax(state.weights)], 'last-value', `weights after the switch: ${state.weights.map((w) => w.toFixed(3))}`);
  assert.ok(state.weights[last]! > 0.8, `last-value weight ${state.weights[last]}`);
  // The share keeps every expert alive, so a later switch can be followed too.
  assert.ok(Math.min(...state.weights) >= ADAPTATION.weights.share * Math.min(...ADAPTATION.prior) * 0.99);
  assert.ok(Math.abs(state.weights.reduce((a, b) => a + b, 0) - 1) < 1e-9);
});

test('fixed share: equal losses keep the prior, and the update is a distribution', () => {
  const w = fixedShareUpdate(ADAPTATION.prior, [0.1, 0.1, 0.1, 0.1, 0.1], ADAPTATION.prior, ADAPTATION.weights);
  w.forEach((x, i) => assert.ok(Math.abs(x - ADAPTATION.prior[i]!) < 1e-12));
});

test('conformal bound: coverage of i.i.d. scores is close to 1 - alpha, whatever their scale', () => {
  for (const scale of [0.05, 1]) {
    const r = rng(11);
    let s = initialConformal(ADAPTATION.conformal);
    let covered = 0;
    let n = 0;
    for (let i = 0; i < 4000; i++) {
      const q = conformalMargin(s, ADAPTATION.conformal);
      const mean = 100;
      const actual = mean * Math.exp(scale * r.normal());
      if (q !== null) {
        n++;
        if (actual >= mean * Math.exp(-q)) covered++;
      }
      s = conformalUpdate(s, ADAPTATION.conformal, { mean, low: q === null ? 0 : mean * Math.exp(-q), actual });
    }
    assert.ok(covered / n > 0.87 && covered / n < 0.93, `scale ${scale}: coverage ${covered / n}`);
  }
});

const model = createPredictor({ modelPath: DEFAULT_MODEL_PATH });

/** Walks a synthetic link through the predictor as the agent would, carrying the state. */
async function walk(times: number[], mbps: number[], onPoint?: (i: number, p: { meanMbps: number; lowMbps: number }, state: AdaptationState) => void) {
  let state: AdaptationState | null = null;
  for (let i = 4; i < times.length; i++) {
    const samples: PredictorSample[] = [];
    for (let j = Math.max(0, i - 63); j <= i; j++) samples.push({ timeMs: times[j]! * 1000, throughputMbps: mbps[j]!, rttMs: null });
    const r = await model.predictAdaptive({ samples, adaptation: state });
    assert.equal(r.prediction.source, 'onnx');
    state = r.adaptation!;
    onPoint?.(i, r.prediction, state);
  }
  return state!;
}

test('on a real predictor: a noisy steady link favours the smoother, then a random walk moves the weight to the model and the last value', async () => {
  const r = rng(3);
  const times: number[] = [];
  const mbps: number[] = [];
  // First 300 s: 20 Mbit/s with 35 % i.i.d. noise (a smoother wins); then a random walk with
  // 3 % steps and no noise (the last value wins; small steps, so it is often within the Welsch
  // loss's width and the smoothers, lagging, are not).
  let level = 20;
  for (let i = 0; i < 600; i++) {
    times.push(i);
    if (i < 300) mbps.push(20 * Math.exp(0.35 * r.normal()));
    else mbps.push((level *= Math.exp(0.03 * r.normal())));
  }
  const w = (s: AdaptationState, name: (typeof EXPERTS)[number]) => s.weights[EXPERTS.indexOf(name)]!;
  let half: AdaptationState | null = null;
  const end = await walk(times, mbps, (i, _p, s) => {
    if (i === 299) half = s;
  });
  assert.ok(half !== null);
  const h = half as AdaptationState;
  const show = (s: AdaptationState) => EXPERTS.map((n, k) => `${n} ${s.weights[k]!.toFixed(3)}`).join(', ');
  // Halfway: the smoother carries the link.
  assert.equal(EXPERTS[argmax(h.weights)], 'ewma-0.2', `halfway: ${show(h)}`);
  assert.ok(w(h, 'ewma-0.2') > 0.5, `halfway: ${show(h)}`);
  // At the end the weight has left the smoothers for the estimators that follow the last value:
  // the last value itself, and the model, which on a random walk predicts close to it.
  assert.ok(w(end, 'ewma-0.2') < 0.15, `end: ${show(end)}`);
  assert.ok(['onnx', 'last-value'].includes(EXPERTS[argmax(end.weights)]!), `end: ${show(end)}`);
  assert.ok(w(end, 'last-value') + w(end, 'onnx') > 0.7, `end: ${show(end)}`);
});

test('on a real predictor: the p10 covers 85-95 % of a link with known noise, at two noise levels', async () => {
  for (const sigma of [0.1, 0.5]) {
    const r = rng(5);
    const times: number[] = [];
    const mbps: number[] = [];
    for (let i = 0; i < 700; i++) {
      times.push(i);
      mbps.push(50 * Math.exp(sigma * r.normal()));
    }
    let covered = 0;
    let n = 0;
    await walk(times, mbps, (i, p) => {
      // The target: mean of the samples in (t, t + 5 s], as the eval scores it.
      if (i < 100 || i + 5 >= times.length) return;
      const actual = (mbps[i + 1]! + mbps[i + 2]! + mbps[i + 3]! + mbps[i + 4]! + mbps[i + 5]!) / 5;
      n++;
      if (actual >= p.lowMbps) covered++;
    });
    assert.ok(covered / n >= 0.85 && covered / n <= 0.95, `sigma ${sigma}: coverage ${covered / n} over ${n}`);
  }
});
