/**
 * The site agent's chunk endpoint, first version: serves a site's volume snapshots over HTTP with
 * Range support, so a target agent can pull a snapshot as a stream and resume a broken pull.
 * Bulk bytes go agent to agent here; they never pass through Temporal.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalProvider } from '../adapters/local';

export interface EndpointOptions {
  provider: LocalProvider;
  host?: string;
  port?: number;
}

function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}

function handle(provider: LocalProvider, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, site: provider.site }));
    return;
  }
  const m = /^\/snapshots\/([^/]+)$/.exec(url.pathname);
  if (!m || req.method !== 'GET') return fail(res, 404, `no route ${req.method} ${url.pathname}`);
  const info = provider.snapshotInfo(m[1]!);
  if (!info) return fail(res, 404, `snapshot '${m[1]}' is not on site '${provider.site}'`);
  const size = statSync(info.path).size;
  let start = 0;
  const range = req.headers.range;
  if (range) {
    const r = /^bytes=(\d+)-$/.exec(range);
    if (!r) return fail(res, 416, `unsupported Range '${range}' (expected bytes=<start>-)`);
    start = Number(r[1]);
    if (start > size) return fail(res, 416, `Range start ${start} is past the end of snapshot (${size} bytes)`);
  }
  res.writeHead(range ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'content-length': String(size - start),
    'x-snapshot-sha256': info.sha256,
    ...(range ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
  });
  if (start === size) {
    res.end();
    return;
  }
  createReadStream(info.path, { start, highWaterMark: 1 << 20 }).pipe(res);
}

export async function startSnapshotEndpoint(opts: EndpointOptions): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => handle(opts.provider, req, res));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${opts.host ?? '127.0.0.1'}:${addr.port}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
