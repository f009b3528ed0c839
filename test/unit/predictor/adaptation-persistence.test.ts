import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { createLinkActivities } from '../../../activities/link';
import { LinkTelemetry, TELEMETRY_FILE, type LinkSample } from '../../../agent/link/telemetry';
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
