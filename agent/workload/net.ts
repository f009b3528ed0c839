/**
 * The network facts the runner needs: a free port for a new instance, whether a port is still
 * free, and a TCP health check.
 */
import { connect, createServer } from 'node:net';

/** A port nobody listens on now (the kernel's pick); kept in the record so restarts reuse it. */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

/** A TCP health check: a connection accepted within the timeout. */
export function tcpCheck(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((done) => {
    const s = connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      done({ ok: false, detail: `no TCP connection to ${host}:${port} within ${timeoutMs} ms` });
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.end();
      done({ ok: true, detail: `TCP ${host}:${port} accepts` });
    });
    s.once('error', (err) => {
      clearTimeout(t);
      done({ ok: false, detail: `TCP ${host}:${port}: ${err.message}` });
    });
  });
}

/** Whether `port` can be listened on now (the instance's last port, before reusing it). */
export async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen(port, host, () => srv.close(() => done(true)));
  });
}
