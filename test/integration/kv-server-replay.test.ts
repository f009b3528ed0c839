/**
 * The sample (workload/kv-server.js) replays its log in pieces, so a log longer than the longest
 * string V8 holds (a 1 GiB volume) still loads: lines that straddle a read boundary, deletes, and a
 * torn last line after a crash, checked on the real process over HTTP.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { freePort } from '../helpers/cli';
import { eventually } from '../helpers/eventually';

const READ_PIECE = 8 << 20;

describe('kv-server log replay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-kvreplay-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a log of many read pieces, with a line across each boundary, deletes, and a torn last line', async () => {
    const lines: string[] = [];
    const value = (i: number) => `v${i}-${'x'.repeat(600 + (i % 97))}`;
    const n = 40_000; // about 26 MB: three read pieces and more
    for (let i = 0; i < n; i++) lines.push(JSON.stringify({ k: `k${i}`, v: value(i) }));
    for (let i = 0; i < n; i += 10) lines.push(JSON.stringify({ k: `k${i}`, del: true }));
    lines.push(JSON.stringify({ k: 'k1', v: 'overwritten' }));
    const text = `${lines.join('\n')}\n{"k":"torn","v":"half`;
    writeFileSync(join(dir, 'kv.jsonl'), text);
    // Which keys' lines straddle a read boundary: those must load whole.
    const straddling: number[] = [];
    let off = 0;
    for (let i = 0; i < n; i++) {
      const end = off + Buffer.byteLength(lines[i]!) + 1;
      if (Math.floor(off / READ_PIECE) !== Math.floor((end - 1) / READ_PIECE)) straddling.push(i);
      off = end;
    }
    assert.ok(straddling.length >= 3, `the log crosses ${straddling.length} read boundaries`);

    const port = await freePort();
    const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', dir, '--port', String(port)], { stdio: 'ignore' });
    try {
      const base = `http://127.0.0.1:${port}`;
      const health = await eventually(
        'kv-server answering /health',
        async () => {
          const r = await fetch(`${base}/health`).catch(() => undefined);
          return r?.ok ? ((await r.json()) as { keys: number }) : undefined;
        },
        60_000,
      );
      assert.equal(health.keys, n - n / 10, 'every key but the deleted ones; the torn line is not one');
      for (const i of [...straddling.filter((i) => i % 10 !== 0 && i !== 1), 2, n - 1]) {
        const r = await fetch(`${base}/kv/k${i}`);
        assert.equal(r.status, 200, `k${i}`);
        assert.equal(await r.text(), value(i), `k${i}`);
      }
      assert.equal((await fetch(`${base}/kv/k10`)).status, 404, 'deleted');
      assert.equal(await (await fetch(`${base}/kv/k1`)).text(), 'overwritten', 'the later line wins');
      assert.equal((await fetch(`${base}/kv/torn`)).status, 404, 'a torn last line is not applied');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
