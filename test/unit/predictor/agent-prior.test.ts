import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAdaptation } from '../../../bench/adaptation-choice';
import { agentPriorCandidates, agentSelected, nestedAgentPrior, prepareDataset, replayAgent, seededOrder, sortedOrder } from '../../../bench/agent-prior';
import type { WalkPoint } from '../../../bench/predictor-eval-walk';
import { initialAgentPrior, mergeAgentPrior, parseAgentPrior, recordAgentLosses } from '../../../models/agent-prior';
import { ADAPTATION, CANDIDATES, EXPERTS, initialAdaptation, lossName, scoreLinkAndAgent, selected, type SelectParams } from '../../../models/link-adaptation';
import { seededRandom } from '../../../agent/link/shaper';

/** Seeded uniform (mulberry32): the tests are reproducible. */
const rng = seededRandom;

const SHIPPED = ADAPTATION as SelectParams;
const at = (name: string) => EXPERTS.indexOf(name as (typeof EXPERTS)[number]);
const record = (sums: Record<string, number>, count: number) => ({ sums: EXPERTS.map((e) => sums[e] ?? 100), count });

test('a new link follows the agent-level leader, and its own evidence must beat the margin (and k points of the prior) to leave it', () => {
  assert.equal(SHIPPED.agentPrior?.k, 0);
  const zero = EXPERTS.map(() => 0);
  // No record yet: the setting's own default.
  assert.equal(EXPERTS[selected(zero, SHIPPED, initialAgentPrior([...EXPERTS], lossName(SHIPPED)))], SHIPPED.default);
  // The agent's links so far favour the last value: a new link starts there.
  const agent = record({ 'last-value': 40, onnx: 60, 'ewma-0.5': 70 }, 100);
  assert.equal(EXPERTS[selected(zero, SHIPPED, agent)], 'last-value');
  // An expert outside the setting's set is never the default, however good.
  assert.equal(EXPERTS[selected(zero, SHIPPED, record({ 'ewma-0.2': 1, 'last-value': 40 }, 100))], 'last-value');
  // The link's own evidence against it: less than the margin keeps it, more switches.
  const own = (ewma: number) => EXPERTS.map((e) => (e === 'ewma-0.5' ? ewma : 10));
  assert.equal(EXPERTS[selected(own(10 - SHIPPED.margin + 0.1), SHIPPED, agent)], 'last-value');
  assert.equal(EXPERTS[selected(own(10 - SHIPPED.margin - 0.1), SHIPPED, agent)], 'ewma-0.5');
  // With k = 8 the agent's mean losses count as 8 points: ewma-0.5 must also make up 8 x (0.7 - 0.4) = 2.4.
  const k8: SelectParams = { ...SHIPPED, agentPrior: { k: 8 } };
  assert.equal(EXPERTS[selected(own(10 - SHIPPED.margin - 2.3), k8, agent)], 'last-value');
  assert.equal(EXPERTS[selected(own(10 - SHIPPED.margin - 2.5), k8, agent)], 'ewma-0.5');
  // A per-link setting ignores the record.
  const perLink = CANDIDATES['ftl-core-onnx-w12-m3-d1'] as SelectParams;
  assert.equal(EXPERTS[selected(zero, perLink, agent)], 'onnx');
});

test('scoring a point teaches the link and the agent the same losses; the bound it was given comes from the states before it', () => {
  const agent0 = initialAgentPrior([...EXPERTS], lossName(SHIPPED));
  const predictions = EXPERTS.map((_, i) => 10 * (1 + 0.05 * i));
  const { state, agent } = scoreLinkAndAgent(initialAdaptation(SHIPPED), agent0, { timeMs: 1000, predictions, modelLowRatio: 0.8, actual: 10 }, SHIPPED);
  assert.equal(agent!.count, 1);
  assert.deepEqual(agent!.sums, state.losses);
  assert.equal(agent!.sums[at('onnx')], 0);
  // The record is JSON and comes back through the parser; a record in another loss does not.
  assert.deepEqual(parseAgentPrior(JSON.parse(JSON.stringify(agent)), EXPERTS, lossName(SHIPPED)).state, agent);
  assert.match(parseAgentPrior(agent, EXPERTS, 'abs-log').problem!, /kept in loss 'welsch-0.12', expected 'abs-log'/);
  assert.match(parseAgentPrior({ ...agent, experts: ['crystal-ball'] }, EXPERTS, lossName(SHIPPED)).problem!, /kept for experts \[crystal-ball\]/);
  assert.deepEqual(recordAgentLosses(agent!, EXPERTS.map(() => 1)).sums, agent!.sums.map((s) => s + 1));
});

test("the eval's fast replay selects exactly as the predictor's rule, over random losses and records", () => {
  const r = rng(3);
  const settings = Object.values(CANDIDATES).filter((c): c is SelectParams => c.kind === 'select');
  for (let n = 0; n < 5000; n++) {
    const base = settings[Math.floor(r() * settings.length)]!;
    const k = [0, 8, 32, 128][Math.floor(r() * 4)]!;
    const losses = EXPERTS.map(() => r() * 20);
    const count = Math.floor(r() * 3) === 0 ? 0 : 1 + Math.floor(r() * 500);
    const agent = { sums: EXPERTS.map(() => r() * count), count };
    const allowed = base.experts.map((e) => EXPERTS.indexOf(e));
    assert.equal(agentSelected(losses, agent, base, k, allowed), selected(losses, { ...base, agentPrior: { k } }, agent));
    assert.equal(agentSelected(losses, null, base, k, allowed), selected(losses, base));
  }
});

/** A synthetic walk: points 1 s apart, every expert off by its own factor, with noise. */
function link(seed: number, n: number, best: string): WalkPoint[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, j) => {
    const actual = 10 * Math.exp(0.2 * (r() - 0.5));
    const experts = EXPERTS.map((e) => actual * Math.exp((e === best ? 0.01 : 0.15) * (r() < 0.5 ? -1 : 1)));
    return {
      index: j + 4,
      timeMs: (j + 4) * 1000,
      actual,
      adaptive: experts[0]!,
      adaptiveLow: experts[0]! * 0.8,
      onnx: experts[0]!,
      onnxLow: experts[0]! * 0.8,
      baselines: { 'last-value': experts[at('last-value')]!, 'harmonic-mean-5': experts[at('harmonic-mean-5')]!, 'ewma-0.5': experts[at('ewma-0.5')]!, 'ewma-0.2': experts[at('ewma-0.2')]! },
      lowFrom: 'model',
      experts,
    };
  });
}

test('the replay uses only outcomes known before each prediction: a later link, or a point not yet 5 s old, changes nothing before it', () => {
  const a = link(1, 40, 'last-value');
  const b = link(2, 40, 'last-value');
  const d = prepareDataset([a, b]);
  const base = baseOf(SHIPPED);
  const before = replayAgent(d, sortedOrder(2), base, { k: 0, withLow: true });
  // The agent learnt from the first link: the second starts from the last value, not the setting's default (the model).
  assert.equal(before.mean[40], b[0]!.experts[at('last-value')]);
  // Another future for the second link: the first link's predictions do not move.
  const b2 = b.map((p) => ({ ...p, actual: p.actual * 3 }));
  const after = replayAgent(prepareDataset([a, b2]), sortedOrder(2), base, { k: 0, withLow: true });
  assert.deepEqual(after.mean.slice(0, 40), before.mean.slice(0, 40));
  assert.deepEqual(after.low!.slice(0, 40), before.low!.slice(0, 40));
  // Another outcome for point 10 of the first link: points up to 14 (its 5 s window) do not move.
  const a2 = a.map((p, j) => (j === 10 ? { ...p, actual: p.actual * 5 } : p));
  const moved = replayAgent(prepareDataset([a2, b]), sortedOrder(2), base, { k: 0 });
  assert.deepEqual(moved.mean.slice(0, 15), before.mean.slice(0, 15));
  // In the other order the second link is first, and starts from the setting's default.
  const swapped = replayAgent(d, [1, 0], base, { k: 0 });
  assert.equal(swapped.mean[0], b[0]!.experts[at(base.default)]);
});

test('seeded orders are permutations, the same for a seed, different across seeds', () => {
  const o = seededOrder(100, 1);
  assert.deepEqual([...o].sort((x, y) => x - y), sortedOrder(100));
  assert.deepEqual(seededOrder(100, 1), o);
  assert.notDeepEqual(seededOrder(100, 2), o);
});

/** The shipped setting without its agent-level field: what bench/agent-prior.ts builds on. */
function baseOf(p: SelectParams): SelectParams {
  const { agentPrior: _unused, ...base } = p;
  return base;
}

test('merging a call into the stored record adds what the call learnt to what is stored now', () => {
  const loss = lossName(SHIPPED);
  const before = { ...initialAgentPrior([...EXPERTS], loss), sums: EXPERTS.map(() => 1), count: 1 };
  const after = { ...before, sums: EXPERTS.map(() => 3), count: 4 };
  const current = { ...before, sums: EXPERTS.map(() => 10), count: 10 };
  const merged = mergeAgentPrior(current, before, after);
  assert.deepEqual(merged.sums, EXPERTS.map(() => 12));
  assert.equal(merged.count, 13);
  // Nothing stored yet, or a record in another loss: the call's own record.
  assert.deepEqual(mergeAgentPrior(null, before, after), after);
  assert.deepEqual(mergeAgentPrior({ ...current, loss: 'abs-log' }, before, after), after);
  // The call started from nothing: all of its record is new.
  assert.equal(mergeAgentPrior(current, null, after).count, 14);
});

test("the nested choice among the agent-prior settings (plan-regret's and the predictor eval's) never looks at the dataset it is for", () => {
  // Three datasets whose links favour the last value, and a fourth, `left`, in two versions.
  const agent = (seed: number, best: string, links = 6) => prepareDataset(Array.from({ length: links }, (_, i) => link(seed + i, 30, best)));
  const others = { b: agent(10, 'last-value'), c: agent(20, 'last-value'), d: agent(30, 'last-value') };
  const datasets = ['left', 'b', 'c', 'd'];
  const run = (left: ReturnType<typeof agent>) => nestedAgentPrior(new Map(Object.entries({ left, ...others })), datasets);
  // An agent with two links that favour the EWMA 0.2 (too few for the last value's default to catch up), and one like the others.
  const one = run(agent(40, 'ewma-0.2', 2));
  const two = run(agent(50, 'last-value'));
  // The left-out dataset's setting is the rule's choice on the other three, whatever that dataset holds...
  assert.equal(one.perDataset.get('left'), two.perDataset.get('left'));
  const onOthers = chooseAdaptation(new Map([...one.improvements].filter(([d]) => d !== 'left')), ['b', 'c', 'd'], [...agentPriorCandidates().keys()]);
  assert.equal(one.perDataset.get('left'), onOthers.overall);
  // ...while a choice that saw it would differ: the choice on all four moves with it.
  assert.notEqual(one.overall, two.overall);
  assert.notEqual(one.overall, one.perDataset.get('left'));
  assert.equal(one.improvements.get('left')!.size, 2448);
});
