import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { createLinkActivities } from '../../../activities/link';
import { LinkTelemetry, TELEMETRY_FILE, type LinkSample } from '../../../agent/link/telemetry';
import { ADAPTATION, EXPERTS, lossName, type SelectParams } from '../../../models/link-adaptation';
import { DEFAULT_MODEL_PATH, createPredictor } from '../../../models/predictor';

const FROM = 'dc:paris';
const TO = 'aws:eu-west-1';
/** These tests never probe a peer: no probe is ever signed with this secret. */
const NO_PROBES = new Uint8Array(32);
// A link that alternates in level every few seconds, so the weights move away from the prior.
const sample = (i: number): LinkSample => ({ timeMs: 1_000 * i, throughputMbps: 40 + 25 * Math.sin(i / 3) + (i % 7), rttMs: 12, loss: 0 });

function withDirs(fn: (a: string, b: string) => Promise<void>) {
  const a = mkdtempSync(path.join(tmpdir(), 'fedflow-adapt-'));
  const b = mkdtempSync(path.join(tmpdir(), 'fedflow-adapt-'));
  return fn(a, b).finally(() => {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  });
}

test('the adaptation state is stored with the telemetry and survives an agent restart', async () => {
  const predictor = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  await withDirs(async (steadyDir, restartedDir) => {
    // Two agents see the same samples and predict at the same moments; one restarts in between.
    const steadyTelemetry = new LinkTelemetry(steadyDir);
    const steady = createLinkActivities({ site: TO, telemetry: steadyTelemetry, predictor, secret: NO_PROBES });
    let restartedTelemetry = new LinkTelemetry(restartedDir);
    let restarted = createLinkActivities({ site: TO, telemetry: restartedTelemetry, predictor, secret: NO_PROBES });
    let i = 0;
    for (const upTo of [30, 60]) {
      for (; i < upTo; i++) {
        steadyTelemetry.record(FROM, TO, sample(i));
        restartedTelemetry.record(FROM, TO, sample(i));
      }
      await steady.predictLink({ source: FROM });
      await restarted.predictLink({ source: FROM });
    }
    const stored = JSON.parse(readFileSync(path.join(restartedDir, TELEMETRY_FILE), 'utf8')) as { adaptation?: Record<string, { scored: number }> };
    const key = `${FROM} -> ${TO}`;
    assert.ok(stored.adaptation?.[key], 'the state is in link-telemetry.json');
    assert.ok(stored.adaptation[key]!.scored > 40, `scored ${stored.adaptation[key]!.scored}`);

    // Restart: a new telemetry object and activities from the same directory.
    restartedTelemetry = new LinkTelemetry(restartedDir);
    restarted = createLinkActivities({ site: TO, telemetry: restartedTelemetry, predictor, secret: NO_PROBES });
    assert.deepEqual(restartedTelemetry.adaptation(FROM, TO), stored.adaptation[key]);
    for (; i < 80; i++) {
      steadyTelemetry.record(FROM, TO, sample(i));
      restartedTelemetry.record(FROM, TO, sample(i));
    }
    const a = await steady.predictLink({ source: FROM });
    const b = await restarted.predictLink({ source: FROM });
    // Same samples, same state: the restart changed nothing.
    assert.deepEqual(b.inputs.adaptation, a.inputs.adaptation);
    assert.equal(b.meanMbps, a.meanMbps);
    assert.equal(b.lowMbps, a.lowMbps);

    // Against a restart that lost the state (only the last 64 samples to learn from): it differs.
    const file = path.join(restartedDir, TELEMETRY_FILE);
    const withoutState = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete withoutState.adaptation;
    writeFileSync(file, JSON.stringify(withoutState));
    const amnesic = createLinkActivities({ site: TO, telemetry: new LinkTelemetry(restartedDir), predictor, secret: NO_PROBES });
    const c = await amnesic.predictLink({ source: FROM });
    assert.ok(c.inputs.adaptation!.scored < a.inputs.adaptation!.scored, `${c.inputs.adaptation!.scored} vs ${a.inputs.adaptation!.scored}`);
  });
});

test('a stored state made for other experts is dropped with one log line, and the link starts afresh', async () => {
  const predictor = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  await withDirs(async (dir) => {
    const telemetry = new LinkTelemetry(dir);
    for (let i = 0; i < 20; i++) telemetry.record(FROM, TO, sample(i));
    telemetry.setAdaptation(FROM, TO, { version: 1, experts: ['crystal-ball'], weights: [1], conformal: { alphaT: 0.1, scores: [] }, scoredUpToMs: null, scored: 3 });
    const lines: string[] = [];
    const acts = createLinkActivities({ site: TO, telemetry: new LinkTelemetry(dir), predictor, log: (l) => lines.push(l), secret: NO_PROBES });
    const p = await acts.predictLink({ source: FROM });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /adaptation state of dc:paris -> aws:eu-west-1 dropped: made for experts \[crystal-ball\]/);
    assert.equal(p.source, 'onnx');
    assert.ok(p.inputs.adaptation!.scored > 0 && p.inputs.adaptation!.scored < 20);
  });
});

test('without a model: the fallback still predicts, says so, and leaves the stored state as it was', async () => {
  const good = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  await withDirs(async (dir, other) => {
    const telemetry = new LinkTelemetry(dir);
    for (let i = 0; i < 30; i++) telemetry.record(FROM, TO, sample(i));
    await createLinkActivities({ site: TO, telemetry, predictor: good, secret: NO_PROBES }).predictLink({ source: FROM });
    const before = telemetry.adaptation(FROM, TO);
    assert.ok(before);
    const lines: string[] = [];
    const missing = createPredictor({ modelPath: path.join(other, 'missing.onnx'), log: (l) => lines.push(l) });
    for (let i = 30; i < 40; i++) telemetry.record(FROM, TO, sample(i));
    const p = await createLinkActivities({ site: TO, telemetry, predictor: missing, secret: NO_PROBES }).predictLink({ source: FROM });
    assert.equal(p.source, 'fallback-harmonic-mean');
    assert.match(p.fallbackReason ?? '', /missing\.onnx failed to load/);
    assert.equal(p.inputs.adaptation, null);
    assert.ok(p.meanMbps > 0 && p.lowMbps > 0 && p.lowMbps <= p.meanMbps);
    assert.equal(lines.length, 1);
    assert.deepEqual(new LinkTelemetry(dir).adaptation(FROM, TO), before);
  });
});

test('the agent-level record is stored with the telemetry, survives an agent restart, and a new link starts from its leader', async () => {
  const predictor = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  const OTHER = 'gcp:europe-west1-b';
  await withDirs(async (dir) => {
    const telemetry = new LinkTelemetry(dir);
    const acts = createLinkActivities({ site: TO, telemetry, predictor, secret: NO_PROBES });
    for (let i = 0; i < 60; i++) telemetry.record(FROM, TO, sample(i));
    await acts.predictLink({ source: FROM });
    const stored = JSON.parse(readFileSync(path.join(dir, TELEMETRY_FILE), 'utf8')) as { agentPrior?: { count: number; sums: number[]; loss: string } };
    assert.ok(stored.agentPrior, 'the record is in link-telemetry.json');
    assert.ok(stored.agentPrior.count > 40, `count ${stored.agentPrior.count}`);
    assert.equal(stored.agentPrior.loss, lossName(ADAPTATION as SelectParams));

    // Restart: the record comes back as it was, and a new link (5 samples: nothing of its own scored yet)
    // follows the expert with the lowest loss in it, among the setting's experts.
    const restarted = new LinkTelemetry(dir);
    assert.deepEqual(restarted.agentPrior(), stored.agentPrior);
    for (let i = 0; i < 5; i++) restarted.record(OTHER, TO, sample(i));
    const p = await createLinkActivities({ site: TO, telemetry: restarted, predictor, secret: NO_PROBES }).predictLink({ source: OTHER });
    const leader = (ADAPTATION as SelectParams).experts.reduce((a, b) => (stored.agentPrior!.sums[EXPERTS.indexOf(b)]! < stored.agentPrior!.sums[EXPERTS.indexOf(a)]! ? b : a));
    assert.equal(p.inputs.adaptation!.scored, 0);
    assert.equal(p.inputs.adaptation!.agentScored, stored.agentPrior.count);
    assert.equal(p.inputs.adaptation!.experts[leader].weight, 1);
    assert.equal(p.meanMbps, p.inputs.adaptation!.experts[leader].mbps);
  });
});

test("a new link follows the last value when the agent's record says its links reward it, and the default without a record", async () => {
  const predictor = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  const params = ADAPTATION as SelectParams;
  await withDirs(async (dir, fresh) => {
    const telemetry = new LinkTelemetry(dir);
    for (let i = 0; i < 5; i++) telemetry.record(FROM, TO, sample(i));
    // A record of 500 points on which the last value erred least.
    const record = { version: 1, experts: [...EXPERTS], loss: lossName(params), sums: EXPERTS.map((e) => (e === 'last-value' ? 100 : 300)), count: 500 };
    telemetry.setAgentPrior(record);
    const p = await createLinkActivities({ site: TO, telemetry: new LinkTelemetry(dir), predictor, secret: NO_PROBES }).predictLink({ source: FROM });
    assert.equal(p.inputs.adaptation!.experts['last-value'].weight, 1);
    assert.equal(p.meanMbps, p.inputs.adaptation!.experts['last-value'].mbps);

    const none = new LinkTelemetry(fresh);
    for (let i = 0; i < 5; i++) none.record(FROM, TO, sample(i));
    const q = await createLinkActivities({ site: TO, telemetry: none, predictor, secret: NO_PROBES }).predictLink({ source: FROM });
    assert.equal(q.inputs.adaptation!.experts[params.default].weight, 1);
    assert.equal(q.inputs.adaptation!.agentScored, 0);
  });
});

test('two overlapping predictions on different links of one agent both count in the agent-level record', async () => {
  const predictor = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  const OTHER = 'gcp:europe-west1-b';
  await withDirs(async (dir) => {
    const telemetry = new LinkTelemetry(dir);
    for (let i = 0; i < 40; i++) {
      telemetry.record(FROM, TO, sample(i));
      telemetry.record(OTHER, TO, sample(i + 7));
    }
    const acts = createLinkActivities({ site: TO, telemetry, predictor, secret: NO_PROBES });
    // Both read the (empty) record before either has stored its own: each awaits the model.
    const [a, b] = await Promise.all([acts.predictLink({ source: FROM }), acts.predictLink({ source: OTHER })]);
    const scored = a.inputs.adaptation!.scored + b.inputs.adaptation!.scored;
    assert.ok(a.inputs.adaptation!.scored > 20 && b.inputs.adaptation!.scored > 20);
    const record = new LinkTelemetry(dir).agentPrior() as { count: number; sums: number[] };
    assert.equal(record.count, scored);
  });
});
