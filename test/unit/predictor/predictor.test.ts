import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { FEATURE_NAMES } from '../../../models/features';
import { DEFAULT_MODEL_PATH, createPredictor, type PredictorSample } from '../../../models/predictor';
import { readTrace } from '../../../bench/predictor-eval-data';

const TRACES = process.env.FEDFLOW_TRACES ?? path.resolve(__dirname, '../../../../shared/traces');

function history(file: string, end: number, n = 64): PredictorSample[] {
  const t = readTrace(file);
  const out: PredictorSample[] = [];
  for (let j = Math.max(0, end - n); j < Math.min(end, t.times.length); j++) {
    out.push({ timeMs: t.times[j]! * 1000, throughputMbps: t.mbps[j]!, rttMs: null });
  }
  return out;
}

test('the committed model loads and gives finite positive outputs on real held-out traces', async () => {
  const lines: string[] = [];
  const p = createPredictor({ modelPath: DEFAULT_MODEL_PATH, log: (l) => lines.push(l) });
  const files = [
    path.join(TRACES, 'oboe', 'oboe_trace_5.txt'),
    path.join(TRACES, 'norway-hsdpa', 'norway_bus_1'),
    path.join(TRACES, 'pensieve-fcc-hsdpa', 'test', 'trace_797466_http---www.amazon_part1.log'),
  ];
  for (const f of files) {
    for (const end of [5, 20, 40]) {
      const samples = history(f, end);
      const r = await p.predict({ samples });
      assert.equal(r.source, 'onnx', `${f}@${end}: ${r.fallbackReason}`);
      assert.ok(Number.isFinite(r.meanMbps) && r.meanMbps > 0, `mean ${r.meanMbps}`);
      assert.ok(Number.isFinite(r.lowMbps) && r.lowMbps > 0 && r.lowMbps <= r.meanMbps, `low ${r.lowMbps}`);
      // Access links: the prediction stays within the trace's own order of magnitude.
      const last = samples[samples.length - 1]!.throughputMbps;
      assert.ok(r.meanMbps < 20 * Math.max(last, 0.05) && r.meanMbps > Math.max(last, 0.05) / 20, `${r.meanMbps} vs last ${last}`);
      assert.equal(r.rttMs, null);
      assert.ok(r.inputs.features && Object.keys(r.inputs.features).length === FEATURE_NAMES.length);
    }
  }
  assert.deepEqual(lines, []);
});

test('scale-free: a Gbit/s-scaled history gives the same prediction scaled', async () => {
  const p = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  const s = history(path.join(TRACES, 'norway-hsdpa', 'norway_bus_1'), 50);
  const a = await p.predict({ samples: s });
  const b = await p.predict({ samples: s.map((x) => ({ ...x, throughputMbps: x.throughputMbps * 5000, rttMs: 0.3 })) });
  assert.ok(Math.abs(b.meanMbps / a.meanMbps - 5000) < 5000 * 1e-4, `${b.meanMbps} / ${a.meanMbps}`);
  assert.equal(b.rttMs, 0.3);
});

const FLAT: PredictorSample[] = [10, 20, 10, 20, 10, 40].map((v, i) => ({ timeMs: i * 1000, throughputMbps: v, rttMs: 30 + i }));
// Harmonic mean of the last 5: 5 / (1/20 + 1/10 + 1/20 + 1/10 + 1/40).
const HM5 = 5 / (1 / 20 + 1 / 10 + 1 / 20 + 1 / 10 + 1 / 40);

async function checkFallback(modelPath: string, expect: RegExp) {
  const lines: string[] = [];
  const p = createPredictor({ modelPath, log: (l) => lines.push(l) });
  const r1 = await p.predict({ samples: FLAT });
  const r2 = await p.predict({ samples: FLAT });
  assert.equal(r1.source, 'fallback-harmonic-mean');
  assert.ok(Math.abs(r1.meanMbps - HM5) < 1e-9, `${r1.meanMbps} vs ${HM5}`);
  assert.equal(r1.lowMbps, 10);
  assert.equal(r1.rttMs, 33); // median of 31..35
  assert.match(r1.fallbackReason ?? '', expect);
  assert.equal(r2.source, 'fallback-harmonic-mean');
  assert.equal(lines.length, 1, `logged ${lines.length} times: ${lines.join(' | ')}`);
  assert.ok(lines[0]!.includes(modelPath), lines[0]);
  assert.ok(!lines[0]!.includes('\n'));
  await assert.rejects(p.runModel(new Array(FEATURE_NAMES.length).fill(0)));
}

test('a missing model falls back to the harmonic mean, logs one line, never throws', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-model-'));
  try {
    await checkFallback(path.join(dir, 'nope.onnx'), /nope\.onnx failed to load/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt model file falls back the same way', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-model-'));
  try {
    const file = path.join(dir, 'garbage.onnx');
    writeFileSync(file, Buffer.from('this is not a protobuf \x00\x01\x02\xff'.repeat(50)));
    await checkFallback(file, /garbage\.onnx failed to load/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model made for another number of features falls back the same way, saying so', async () => {
  // A two-tree ensemble over 23 inputs (the feature count before session 9), made with models/export_onnx.py.
  const file = path.join(__dirname, 'fixtures', 'width-23.onnx');
  await checkFallback(file, new RegExp(`'features' is \\[N, 23\\], but models/features\\.ts computes ${FEATURE_NAMES.length} features`));
});

test('fewer than 5 samples use the fallback with the reason; no samples is a caller error', async () => {
  const p = createPredictor({ modelPath: DEFAULT_MODEL_PATH });
  const r = await p.predict({ samples: FLAT.slice(0, 3) });
  assert.equal(r.source, 'fallback-harmonic-mean');
  assert.match(r.fallbackReason ?? '', /only 3 samples/);
  await assert.rejects(p.predict({ samples: [] }), /no samples/);
});
