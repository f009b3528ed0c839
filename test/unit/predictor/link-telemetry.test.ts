import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { createLinkActivities } from '../../../activities/link';
import { LinkTelemetry, TELEMETRY_FILE, TransferSampler, probe, type LinkSample } from '../../../agent/link/telemetry';
import { SourceImages } from '../../../agent/capture/source-images';
import { startTransferServer } from '../../../agent/transfer/server';
import { MIN_SAMPLES } from '../../../models/features';

const SECRET = Buffer.alloc(32, 9);

const sample = (i: number, mbps = 100 + i): LinkSample => ({ timeMs: 1_000 * i, throughputMbps: mbps, rttMs: 2, loss: 0 });

test('ring buffer keeps the newest samples per pair, in time order', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-telemetry-'));
  try {
    const t = new LinkTelemetry(dir, 4);
    for (let i = 0; i < 6; i++) t.record('a', 'b', sample(i));
    t.record('a', 'b', sample(3.5)); // out of order: lands in place
    t.record('b', 'a', sample(9));
    const p = t.profile('a', 'b');
    assert.deepEqual(p.samples.map((s) => s.timeMs), [3000, 3500, 4000, 5000]);
    assert.equal(p.summary.count, 4);
    assert.equal(p.summary.lastMbps, 105);
    assert.equal(t.profile('b', 'a').samples.length, 1);
    assert.equal(t.profile('a', 'c').summary.count, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the history survives a restart (persisted JSON) and a corrupt file is reported, not dropped', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-telemetry-'));
  try {
    const t = new LinkTelemetry(dir);
    for (let i = 0; i < 10; i++) t.record('dc:paris', 'aws:eu-west-1', sample(i));
    const again = new LinkTelemetry(dir);
    assert.deepEqual(again.profile('dc:paris', 'aws:eu-west-1'), t.profile('dc:paris', 'aws:eu-west-1'));
    assert.ok(readFileSync(path.join(dir, TELEMETRY_FILE), 'utf8').length < 4096);
    writeFileSync(path.join(dir, TELEMETRY_FILE), '{"version":1,"links":{"x":[{"timeMs":"soon"}]}}');
    assert.throws(() => new LinkTelemetry(dir), /link-telemetry\.json is not valid/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A loopback peer: `/blob` streams 4 MiB in 64 KiB chunks; `/fail` answers 500.
let server: Server;
let base: string;
let requests = 0;
before(async () => {
  server = createServer((req, res) => {
    requests++;
    if (req.url === '/fail') {
      res.writeHead(500).end();
      return;
    }
    if (req.headers.range === 'bytes=0-0' || req.url?.includes('bytes=0&')) {
      res.writeHead(206, { 'content-length': '1' }).end('x');
      return;
    }
    const chunk = Buffer.alloc(64 * 1024, 7);
    let left = 64;
    res.writeHead(200, { 'content-length': String(64 * chunk.length) });
    const pump = () => {
      while (left > 0) {
        left--;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

test('probe measures RTT and throughput against a loopback server with real fetch', async () => {
  requests = 0;
  const s = await probe({ url: `${base}/blob`, rttRequests: 5, transferBytes: 4 * 1024 * 1024 });
  assert.equal(requests, 6, 'five round trips and one transfer');
  assert.ok(s.rttMs !== null && s.rttMs > 0 && s.rttMs < 1000, `rtt ${s.rttMs}`);
  assert.ok(s.throughputMbps > 10, `loopback throughput ${s.throughputMbps} Mbit/s`);
  assert.equal(s.loss, 0);
});

test('probe counts failed round trips as loss and times through an injected fetch', async () => {
  let clock = 0;
  // Each round trip "takes" 3 ms; the transfer delivers 1 MB per 10 ms after its first chunk.
  const fetchLike = async (url: string) => {
    clock += 3;
    if (url.endsWith('/fail')) return { ok: false, status: 500, body: null };
    if (url.endsWith('/rtt')) return { ok: true, status: 200, body: null };
    return {
      ok: true,
      status: 200,
      body: (async function* () {
        for (let i = 0; i < 5; i++) {
          clock += 10;
          yield new Uint8Array(1_000_000);
        }
      })(),
    };
  };
  const s = await probe({ url: `${base}/blob`, rttUrl: `${base}/rtt`, fetch: fetchLike, rttRequests: 4, now: () => clock });
  assert.equal(s.rttMs, 3);
  assert.equal(s.loss, 0);
  // 4 MB after the first chunk, over 40 ms = 800 Mbit/s.
  assert.ok(Math.abs(s.throughputMbps - 800) < 1e-9, `${s.throughputMbps}`);
  const lossy = await probe({ url: `${base}/blob`, rttUrl: `${base}/fail`, fetch: fetchLike, rttRequests: 4, now: () => clock });
  assert.equal(lossy.loss, 1);
  assert.equal(lossy.rttMs, null);
  await assert.rejects(probe({ url: `${base}/fail`, rttRequests: 0 }), /HTTP 500/);
});

/** A real agent endpoint of site dc:a: its /probe wants a token signed with SECRET. */
async function startAgentEndpoint(dir: string) {
  const images = new SourceImages(path.join(dir, 'images'));
  const endpoint = await startTransferServer({ site: 'dc:a', images, secret: SECRET });
  return { url: endpoint.url, close: async () => (await endpoint.close(), await images.close()) };
}

test('probeLink warms a cold link up to the samples the model reads, then takes one sample a call', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-telemetry-'));
  const agent = await startAgentEndpoint(dir);
  const base = agent.url;
  try {
    const telemetry = new LinkTelemetry(dir);
    const link = createLinkActivities({ site: 'dc:b', telemetry, secret: SECRET, warmUp: { spacingMs: 150 } });
    const cold = await link.probeLink({ source: 'dc:a', endpoint: base });
    assert.equal(cold.samples.length, MIN_SAMPLES, 'a cold link gets a series of MIN_SAMPLES probes');
    const gaps = cold.samples.slice(1).map((s, i) => s.timeMs - cold.samples[i]!.timeMs);
    // Spaced from probe start to probe start. A sample is stamped after its round trips, so one gap
    // may be short by the jitter of two probes' durations (on a loaded machine, tens of ms); over
    // the series it enters once: the span covers all but one spacing however the probes ran
    // (back to back, the series would take a few ms).
    const span = cold.samples.at(-1)!.timeMs - cold.samples[0]!.timeMs;
    assert.ok(span >= (cold.samples.length - 2) * 150, `probes are spaced: ${gaps.join(', ')} ms (span ${span} ms)`);
    assert.ok(cold.samples.every((s) => s.throughputMbps > 0 && s.rttMs !== null));
    // Warm now: the model predicts (not the harmonic-mean fallback) from the series.
    const prediction = await link.predictLink({ source: 'dc:a' });
    assert.equal(prediction.source, 'onnx', prediction.fallbackReason);
    assert.equal(prediction.inputs.sampleCount, MIN_SAMPLES);
    const warm = await link.probeLink({ source: 'dc:a', endpoint: base });
    assert.equal(telemetry.profile('dc:a', 'dc:b').samples.length, MIN_SAMPLES + 1, 'a warm link takes one sample');
    assert.equal(warm.samples.length, MIN_SAMPLES + 1);
    // The series stops at its time budget, whatever it reached.
    const hurried = createLinkActivities({ site: 'dc:c', telemetry, secret: SECRET, warmUp: { spacingMs: 20, budgetMs: 0 } });
    assert.equal((await hurried.probeLink({ source: 'dc:a', endpoint: base })).samples.length, 1);
    assert.equal((await hurried.predictLink({ source: 'dc:a' })).source, 'fallback-harmonic-mean');
    // An agent holding another federation's secret is refused the probe.
    const stranger = createLinkActivities({ site: 'dc:d', telemetry, secret: Buffer.alloc(32, 2), warmUp: { budgetMs: 0 } });
    await assert.rejects(stranger.probeLink({ source: 'dc:a', endpoint: base }), /HTTP 401/);
  } finally {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a transfer becomes samples: half-second slices of all streams, from the first batch to the tail', () => {
  const MiB = 1 << 20;
  let clock = 0;
  const got: LinkSample[] = [];
  const sampler = new TransferSampler((x) => got.push(x), { now: () => clock });
  const at = (ms: number, bytes: number, saturated = true) => {
    clock = ms;
    sampler.progress(bytes, saturated);
  };
  at(300, 1 * MiB); // first batch: the slice starts here, not at the request (start-up left out)
  at(500, 3 * MiB); // too short a slice
  at(900, 5 * MiB); // 4 MiB over 600 ms
  at(1200, 5.5 * MiB);
  at(1500, 5.6 * MiB); // 0.6 MiB: too little, carried on
  at(2000, 7.6 * MiB); // 2.6 MiB over 1100 ms
  at(2400, 8 * MiB, false); // nothing left to start: the tail, where streams go idle
  at(3200, 12 * MiB, true);
  assert.deepEqual(got.map((x) => x.timeMs), [300, 900]);
  assert.ok(Math.abs(got[0]!.throughputMbps - (4 * MiB * 8) / 600_000) < 1e-9, `${got[0]!.throughputMbps}`);
  assert.ok(Math.abs(got[1]!.throughputMbps - (2.6 * MiB * 8) / 1_100_000) < 1e-9, `${got[1]!.throughputMbps}`);
  assert.ok(got.every((x) => x.rttMs === null && x.loss === null), 'a transfer measures neither RTT nor loss');
});

test('a long transfer does not push the last measured RTTs out of the ring', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedflow-telemetry-'));
  try {
    const t = new LinkTelemetry(dir, 16);
    for (let i = 0; i < 6; i++) t.record('a', 'b', { timeMs: i, throughputMbps: 900, rttMs: 1 + i / 10, loss: 0 }); // probes
    for (let i = 0; i < 40; i++) t.record('a', 'b', { timeMs: 100 + i, throughputMbps: 950, rttMs: null, loss: null }); // transfer slices
    const ring = t.profile('a', 'b').samples;
    assert.equal(ring.length, 16);
    assert.deepEqual(ring.filter((x) => x.rttMs !== null).map((x) => x.timeMs), [1, 2, 3, 4, 5], 'the newest five RTTs stay');
    assert.deepEqual(ring.slice(5).map((x) => x.timeMs), Array.from({ length: 11 }, (_, i) => 129 + i), 'then the newest transfer samples');
    assert.ok(ring.every((x, i) => i === 0 || x.timeMs > ring[i - 1]!.timeMs), 'still in time order');
    // And across a restart.
    assert.deepEqual(new LinkTelemetry(dir, 16).profile('a', 'b').samples, ring);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cancelled probe stops at once and says so, instead of timing out or counting loss', async () => {
  // A peer that answers the round trips but never sends the transfer's body.
  const stalled = createServer((req, res) => {
    if (req.url?.includes('bytes=0')) return void res.writeHead(200, { 'content-length': '1' }).end('x');
    res.writeHead(200, { 'content-length': String(1 << 20) });
    res.write(Buffer.alloc(1)); // then nothing
  });
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`;
  try {
    const ctl = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ctl.abort(new Error('activity cancelled')), 200);
    await assert.rejects(probe({ url: `${url}/probe?bytes=1`, rttUrl: `${url}/probe?bytes=0&to=x`, signal: ctl.signal, maxTransferMs: 10_000 }), /activity cancelled/);
    assert.ok(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms; the stall timer alone is 12 s`);
    await assert.rejects(probe({ url, signal: ctl.signal }), /activity cancelled/, 'an aborted signal refuses at once');
  } finally {
    stalled.closeAllConnections();
    await new Promise<void>((r) => stalled.close(() => r()));
  }
});
