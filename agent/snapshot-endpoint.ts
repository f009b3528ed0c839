/**
 * The site agent's chunk endpoint, first version: serves a site's volume snapshots over HTTP with
 * Range support, so a target agent can pull a snapshot as a stream and resume a broken pull.
 * Bulk bytes go agent to agent here; they never pass through Temporal.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalProvider } from '../adapters/local';
import type { LinkShape } from '../core/federation-config';
import { LinkDropError, LinkShaperSet, UNSHAPED } from './shaper';

export interface EndpointOptions {
  provider: LocalProvider;
  /** Emulated links from this site to others (local federation); unshaped when absent. */
  shapers?: LinkShaperSet;
  host?: string;
  port?: number;
}

function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}

/** The shapers of a federation's configured links (ordered pairs); unconfigured pairs are unshaped. */
export function shapersFromConfig(links: LinkShape[], seed?: number): LinkShaperSet {
  const set = new LinkShaperSet({ seed });
  for (const l of links) {
    set.set(l.from, l.to, {
      ...UNSHAPED,
      rateMbps: l.rateMbps ?? Number.POSITIVE_INFINITY,
      delayMs: l.delayMs,
      jitterMs: l.jitterMs,
      loss: l.loss,
    });
  }
  return set;
}

async function handle(provider: LocalProvider, shapers: LinkShaperSet | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  // The requesting site names itself, so the reply crosses the emulated link source -> requester.
  const to = url.searchParams.get('to');
  const shaper = shapers && to && to !== provider.site ? shapers.get(provider.site, to) : undefined;
  if (shaper) {
    const d = shaper.decide();
    if (d.delayMs > 0) await new Promise((r) => setTimeout(r, d.delayMs));
    if (d.drop) {
      // A lost request looks like a reset connection to the caller, as on a real lossy path.
      req.socket.destroy(new LinkDropError(provider.site, to!));
      return;
    }
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
  const file = createReadStream(info.path, { start, highWaterMark: 1 << 20 });
  if (shaper) file.pipe(shaper.pace()).pipe(res);
  else file.pipe(res);
}

export async function startSnapshotEndpoint(opts: EndpointOptions): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    handle(opts.provider, opts.shapers, req, res).catch((err: unknown) => {
      if (!res.headersSent) fail(res, 500, String(err));
      else res.destroy();
    });
  });
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
