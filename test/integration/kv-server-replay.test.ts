/**
 * The sample (workload/kv-server.js) replays its log in pieces, so a log longer than the longest
 * string V8 holds (a 1 GiB volume) still loads: lines that straddle a read boundary, deletes, and a
 * torn last line after a crash, checked on the real process over HTTP.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

  it('cuts a torn tail off before appending: writes acknowledged after a crash survive the next restart', async () => {
    const d = mkdtempSync(join(tmpdir(), 'fedflow-kvtorn-'));
    const start = async () => {
      const port = await freePort();
      const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', d, '--port', String(port)], { stdio: 'ignore' });
      const base = `http://127.0.0.1:${port}`;
      await eventually('kv-server answering /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok, 30_000);
      return { child, base };
    };
    try {
      // A whole line, then one cut short by a crash (this one even parses, but has no newline).
      writeFileSync(join(d, 'kv.jsonl'), '{"k":"a","v":"1"}\n{"k":"b","v":"2"}');
      const one = await start();
      assert.equal(await (await fetch(`${one.base}/kv/a`)).text(), '1');
      assert.equal((await fetch(`${one.base}/kv/b`)).status, 404, 'a record without its newline was cut short: not applied');
      for (const [k, v] of [['c', '3'], ['d', '4']]) assert.equal((await fetch(`${one.base}/kv/${k}`, { method: 'PUT', body: v })).status, 200);
      await new Promise((r) => setTimeout(r, 200)); // past the 50 ms flush
      one.child.kill('SIGKILL');
      const two = await start();
      try {
        assert.deepEqual(await (await fetch(`${two.base}/kv`)).json(), { a: '1', c: '3', d: '4' }, 'every acknowledged write is back after the restart');
      } finally {
        two.child.kill('SIGKILL');
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
  it('rolls over many segments faster than their fsyncs: the process stays up, every write is back after a restart, the freeze flushes what is settling', async () => {
    const d = mkdtempSync(join(tmpdir(), 'fedflow-kvroll-'));
    const start = async () => {
      const port = await freePort();
      const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', d, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const base = `http://127.0.0.1:${port}`;
      await eventually('kv-server answering /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok, 30_000);
      return { child, base, err: () => err };
    };
    try {
      const one = await start();
      // 48 MiB in 256 KiB values, 8 at a time: a 1 MiB segment fills every four writes, well
      // inside an fsync's time, so rolls overlap the fsyncs of the segments before them.
      const value = (i: number) => `${i}:`.padEnd(256 << 10, String.fromCharCode(97 + (i % 26)));
      const n = 192;
      for (let i = 0; i < n; i += 8) {
        const codes = await Promise.all(Array.from({ length: 8 }, (_, j) => fetch(`${one.base}/kv/r${i + j}`, { method: 'PUT', body: value(i + j) }).then((r) => r.status)));
        assert.deepEqual(codes, Array(8).fill(200));
      }
      // The freeze flushes synchronously, a segment still settling included, then SIGKILL.
      assert.equal((await fetch(`${one.base}/admin/freeze`, { method: 'POST' })).status, 200);
      assert.equal(one.child.exitCode, null, `the sample exited: ${one.err()}`);
      assert.doesNotMatch(one.err(), /fsync of .* failed/);
      one.child.kill('SIGKILL');
      const segments = readdirSync(d).filter((f) => /^kv(\.\d+)?\.jsonl$/.test(f));
      assert.ok(segments.length >= 40, `expected the log in 1 MiB segments, found ${segments.length} files`);
      const two = await start();
      try {
        const h = (await (await fetch(`${two.base}/health`)).json()) as { keys: number };
        assert.equal(h.keys, n);
        for (const i of [0, 77, n - 1]) assert.equal(await (await fetch(`${two.base}/kv/r${i}`)).text(), value(i));
      } finally {
        two.child.kill('SIGKILL');
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
  it('a segment short of full yet followed by another lost its end in a crash: the log ends there, the later segment is moved aside', async () => {
    const d = mkdtempSync(join(tmpdir(), 'fedflow-kvshort-'));
    try {
      // Whole records only, but 100 bytes where a full segment holds 1 MiB or more: its end, and
      // what the kernel had written of the next segment before it, came from different moments.
      writeFileSync(join(d, 'kv.jsonl'), '{"k":"a","v":"1"}\n{"k":"b","v":"2"}\n');
      writeFileSync(join(d, 'kv.1.jsonl'), '{"k":"c","v":"3"}\n');
      const port = await freePort();
      const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', d, '--port', String(port)], { stdio: 'ignore' });
      const base = `http://127.0.0.1:${port}`;
      try {
        await eventually('kv-server answering /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok, 30_000);
        assert.deepEqual(await (await fetch(`${base}/kv`)).json(), { a: '1', b: '2' }, 'a prefix of the log, with no hole');
        assert.ok(existsSync(join(d, 'kv.1.jsonl.orphan')), 'the later segment is kept aside, not replayed');
        assert.equal((await fetch(`${base}/kv/d`, { method: 'PUT', body: '4' })).status, 200);
      } finally {
        child.kill('SIGKILL');
      }
      assert.match(readFileSync(join(d, 'kv.jsonl'), 'utf8'), /"k":"d"/, 'writes go on in the segment where the log ends');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
