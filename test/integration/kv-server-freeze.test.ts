/**
 * The sample (workload/kv-server.js) at a freeze sends its writing clients to the front: a write
 * refused while frozen (503) ends its connection, so the client's retry comes on a new connection
 * (which the workload's front holds during a cut-over). Connections it refused nothing on stay
 * open: the agent's own pooled calls right after the freeze (its digest) must not meet a
 * connection closing under them. Checked on the real process over raw TCP and with fetch.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { freePort } from '../helpers/cli';
import { eventually } from '../helpers/eventually';
import { tempDir } from '../helpers/tmp';
import { join } from 'node:path';

/** One HTTP/1.1 connection, kept alive: sends a request, reads one response (status, headers). */
class Conn {
  private buf = '';
  private waiting?: () => void;
  closed = false;
  private constructor(private readonly s: Socket) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      this.buf += d;
      this.waiting?.();
    });
    s.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  async request(method: string, path: string, body = ''): Promise<{ status: number; headers: string }> {
    this.buf = '';
    this.s.write(`${method} ${path} HTTP/1.1\r\nHost: kv\r\nConnection: keep-alive\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    for (;;) {
      const head = this.buf.indexOf('\r\n\r\n');
      if (head >= 0) {
        const headers = this.buf.slice(0, head).toLowerCase();
        const len = Number(/content-length: (\d+)/.exec(headers)?.[1] ?? 0);
        if (this.buf.length >= head + 4 + len) return { status: Number(headers.split(' ')[1]), headers };
      }
      if (this.closed) throw new Error(`the connection closed before a whole response to ${method} ${path}`);
      await new Promise<void>((r) => (this.waiting = r));
    }
  }

  destroy(): void {
    this.s.destroy();
  }
}

describe('kv-server at a freeze', () => {
  const dir = tempDir('fedflow-kvfreeze-');
  let child: ReturnType<typeof spawn> | undefined;
  after(() => child?.kill('SIGKILL'));

  it('ends each connection whose write it refused, keeps the others, and serves again after a thaw', { timeout: 60_000 }, async () => {
    const port = await freePort();
    child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', dir, '--port', String(port)], { stdio: 'ignore' });
    const admin = await eventually('kv-server listening', () => Conn.open(port).catch(() => undefined), 30_000);
    const writer = await Conn.open(port);
    const reader = await Conn.open(port);
    assert.equal((await writer.request('PUT', '/kv/before', 'a')).status, 200);
    assert.equal((await writer.request('PUT', '/kv/before2', 'b')).status, 200, 'kept alive before the freeze');

    assert.equal((await admin.request('POST', '/admin/freeze')).status, 200);
    assert.equal((await admin.request('GET', '/admin/digest')).status, 200, 'the freeze\'s own connection goes on');
    const refused = await writer.request('PUT', '/kv/during', 'c');
    assert.equal(refused.status, 503, 'a write while frozen is refused');
    assert.match(refused.headers, /connection: close/, 'and its connection is ended');
    await eventually('the refused connection closed', async () => writer.closed || undefined, 5_000);
    // Reads are still served while frozen, on a connection kept alive.
    assert.equal((await reader.request('GET', '/kv/before')).status, 200);
    assert.equal((await reader.request('GET', '/kv/before2')).status, 200);
    assert.equal(reader.closed, false, 'a read does not end its connection');
    assert.equal(admin.closed, false);

    assert.equal((await admin.request('POST', '/admin/thaw')).status, 200);
    const again = await Conn.open(port);
    assert.equal((await again.request('PUT', '/kv/after', 'd')).status, 200, 'served again after the thaw');
    assert.equal((await again.request('GET', '/kv/during')).status, 404, 'the refused write was not applied');
    for (const c of [again, reader, admin]) c.destroy();
  });

  it('answers a pooled client\'s calls right after each freeze (freeze, then digest, as the agent does)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const d = tempDir('fedflow-kvfreeze-pool-');
    const kv = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', d, '--port', String(port)], { stdio: 'ignore' });
    try {
      const base = `http://127.0.0.1:${port}`;
      await eventually('kv-server answering /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok || undefined, 30_000);
      for (let i = 0; i < 100; i++) {
        // A write on the pool's connection too, so a freeze meets kept-alive idle connections.
        assert.equal((await fetch(`${base}/kv/k${i}`, { method: 'PUT', body: 'v' })).status, 200);
        assert.equal((await fetch(`${base}/admin/freeze`, { method: 'POST' })).status, 200, `freeze ${i}`);
        assert.equal((await fetch(`${base}/admin/digest`)).status, 200, `digest right after freeze ${i}`);
        assert.equal((await fetch(`${base}/admin/thaw`, { method: 'POST' })).status, 200, `thaw ${i}`);
      }
    } finally {
      kv.kill('SIGKILL');
    }
  });
});
