/**
 * The site agent's chunk endpoint: serves manifests and batches of chunks of this site's volume
 * images to other sites' agents, over HTTP keep-alive.
 *
 *   GET  /health                                 open: liveness and the site id, nothing else
 *   GET  /stats                                  transfer counters, and the counters of the workload
 *                                                fronts this process runs under `fronts` (token
 *                                                scoped to 'stats')
 *   GET  /probe?bytes=N                          N bytes (at most MAX_PROBE_BYTES, 64 MiB) of filler
 *                                                for link telemetry, over the emulated link to the
 *                                                token's target (token scoped to 'probe')
 *   GET  /manifests/<root>                       the manifest (JSON; zstd-encoded if the request
 *                                                accepts it: `Accept-Encoding: zstd`)
 *   GET  /manifests/<root>?format=bin&base=<r1>,<r2>…
 *                                                the manifest in binary (core/manifest-delta.ts), as
 *                                                a delta against the first base this site knows
 *                                                (header x-fedflow-manifest-base: its root, or none)
 *   POST /chunks/<root>?codec=lz4|zstd|none&level=N&to=<site>
 *        body {"hashes": [...]}, answer: per hash, [32-byte digest][u32 BE length][packed chunk];
 *        header x-fedflow-resent: which of them this site served to the same target for the same
 *        image before (a bitset over the request's positions, base64url; '-' for none), so the
 *        target can count what crossed the link twice (a retry after a crash) apart
 *   GET  /finals/<slot>?waitMs=N[&digestOf=R][&lost=L]
 *                                                long poll for a cut-over's final image
 *                                                (agent/capture/final-images.ts): 200 and its root,
 *                                                counts and frozen digest once the source has
 *                                                captured it, 204 if not within N ms (max 20 s);
 *                                                with digestOf, once the image of root R has its
 *                                                digest (or another image replaced it); with
 *                                                lost, only an image this agent holds (L was
 *                                                announced, then lost in a crash: another, or L
 *                                                captured again)
 *
 * With TLS (the default; `tls` below) every route, /health too, is served only to a peer whose
 * certificate chains to the federation's CA and names a site of the federation; the token is then a
 * second lock, and its target must be that site (except for /stats, which any site may read).
 * Every route but /health needs `Authorization: Bearer <token>`: HMAC-signed with the federation's
 * transfer secret, expiring, and scoped to one manifest (or, for /stats and /probe, to that route:
 * ENDPOINT_SCOPES) and one source/target pair (agent/transfer/token.ts). /probe is gated because
 * it streams up to 64 MiB per request: open, it lets anyone make the agent spend its link. Replies cross the
 * emulated link source -> requester when the federation configures one (agent/link/shaper.ts).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { peerOf, tlsServerOptions, type SiteTls } from './tls';
import { compressChunk, packChunk, type CodecSpec, ZSTD_LEVELS } from './codec';
import type { LinkShaperSet } from '../link/shaper';
import { LinkDropError } from '../link/shaper';
import type { SourceImages } from '../capture/source-images';
import type { FinalImage } from '../capture/final-images';
import { SHA256_HEX } from '../../core/manifest';
import { encodeManifest } from '../../core/manifest-delta';
import { ENDPOINT_SCOPES, verifyToken, type VerifyResult } from './token';
import type { FrontStats } from '../front/tcp-front';

export interface TransferServerOptions {
  site: string;
  images: SourceImages;
  secret: Uint8Array;
  shapers?: LinkShaperSet;
  host?: string;
  port?: number;
  /**
   * Mutual TLS 1.3 (agent/transfer/tls.ts): the endpoint then serves only peers whose certificate
   * chains to the federation CA and names a site of the federation, and a token's target must be
   * the site the peer's certificate names. Absent: plain HTTP (a federation with tls.mode 'plain').
   */
  tls?: SiteTls;
  /** Test hook: corrupt this chunk's bytes on the wire (after packing) when it returns true. */
  corrupt?: (hash: string) => boolean;
  /** Test hook: alter a binary manifest's bytes before they are sent (a tampered delta). */
  tamperManifest?: (bytes: Uint8Array, baseRoot: string | undefined) => void;
  /** Counts, for tests and benchmarks (also served, to a token scoped to 'stats', at GET /stats). */
  stats?: TransferStats;
  /** The counters of the workload fronts this process runs (agent/front/), served beside them at GET /stats. */
  fronts?: () => Record<string, FrontStats>;
  /**
   * Told of every chunk this endpoint serves, once its bytes are handed to the socket: an audit
   * trail of what crossed to whom (FEDFLOW_SERVED_LOG writes it as JSON lines). The hosts tier
   * reads it to check that a transfer resumed after a partition asks for no verified chunk twice.
   */
  onServed?: (e: ServedChunk) => void;
}

/** One chunk served: when, to which site, from which image, and how many times (this one included) it went to that site from that image. */
export interface ServedChunk {
  at: number;
  from: string;
  to: string;
  root: string;
  hash: string;
  n: number;
}

export const MAX_BATCH_HASHES = 4096;
/** The longest one /finals long poll is held open; the waiting activity heartbeats and asks again. */
export const MAX_FINAL_WAIT_MS = 20_000;
/** Base roots a manifest request may name. */
export const MAX_MANIFEST_BASES = 8;
export const BINARY_MANIFEST_TYPE = 'application/vnd.fedflow.manifest';
export const MANIFEST_BASE_HEADER = 'x-fedflow-manifest-base';
/** Chunks of a batch reply served before to the same target from the same image: a bitset over the request's positions. */
export const RESENT_HEADER = 'x-fedflow-resent';

/** The RESENT_HEADER value for `flags` (one per requested hash). */
export function encodeResent(flags: readonly boolean[]): string {
  if (!flags.some(Boolean)) return '-';
  const bits = Buffer.alloc(Math.ceil(flags.length / 8));
  flags.forEach((f, i) => {
    if (f) bits[i >> 3]! |= 1 << (i & 7);
  });
  return bits.toString('base64url');
}

/**
 * The positions a RESENT_HEADER value marks, or undefined when the header is absent (an agent
 * from before it, which does not say what it sent twice).
 */
export function decodeResent(value: string | string[] | undefined): ((i: number) => boolean) | undefined {
  if (typeof value !== 'string') return undefined;
  if (value === '-' || value === '') return () => false;
  const bits = Buffer.from(value, 'base64url');
  return (i) => i >> 3 < bits.length && (bits[i >> 3]! & (1 << (i & 7))) !== 0;
}
/** Manifests are compressed once per request; level 3 does ~2.4:1 on them at hundreds of MB/s. */
const MANIFEST_ZSTD_LEVEL = 3;

export interface TransferStats {
  chunksServed: number;
  /** Raw (uncompressed) chunk bytes written to requesters. */
  rawBytesServed: number;
  /** Bytes on the wire: frame headers + packed chunks. */
  bytesServed: number;
  /** Of bytesServed, chunks served before to the same target from the same image (a retried pull). */
  resentBytesServed: number;
  refused: number;
}

export function newTransferStats(): TransferStats {
  return { chunksServed: 0, rawBytesServed: 0, bytesServed: 0, resentBytesServed: 0, refused: 0 };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new Error(`request body over ${limit} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

function codecFrom(url: URL): CodecSpec | string {
  const codec = url.searchParams.get('codec') ?? 'none';
  if (codec === 'none' || codec === 'lz4') return { codec };
  if (codec === 'zstd') {
    const level = Number(url.searchParams.get('level') ?? ZSTD_LEVELS.default);
    if (!Number.isInteger(level) || level < ZSTD_LEVELS.min || level > ZSTD_LEVELS.max) return `zstd level '${url.searchParams.get('level')}' is not an integer in ${ZSTD_LEVELS.min}..${ZSTD_LEVELS.max}`;
    return { codec, level };
  }
  return `codec '${codec}' is not one of none, lz4, zstd`;
}

/** Upper bound of one probe transfer: a probe reads 4 MiB (activities/link.ts); 64 MiB is ample headroom. */
export const MAX_PROBE_BYTES = 64 << 20;
/** Incompressible filler for probes, made once. */
let probeBlock: Buffer | undefined;

export function createTransferHandler(opts: TransferServerOptions) {
  /**
   * GET /probe?bytes=N: N bytes of incompressible filler over the emulated link to the token's
   * target, for link telemetry. bytes=0 is a round trip. The caller has passed the token check.
   */
  async function probeReply(url: URL, req: IncomingMessage, res: ServerResponse, to: string): Promise<void> {
    const given = url.searchParams.get('bytes') ?? '0';
    const n = Number(given);
    if (!/^\d+$/.test(given) || !Number.isSafeInteger(n) || n > MAX_PROBE_BYTES) {
      return reply(res, 400, { error: `probe bytes '${given.slice(0, 40)}' must be an integer in 0..${MAX_PROBE_BYTES} (64 MiB, the most one probe may send)` });
    }
    const shaper = opts.shapers && to !== opts.site ? opts.shapers.get(opts.site, to) : undefined;
    if (shaper) {
      const d = shaper.decide();
      if (d.delayMs > 0) await new Promise((r) => setTimeout(r, d.delayMs));
      if (d.drop) {
        req.socket.destroy(new LinkDropError(opts.site, to!));
        return;
      }
    }
    probeBlock ??= randomBytes(1 << 20);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    for (let sent = 0; sent < n; ) {
      const piece = probeBlock.subarray(0, Math.min(probeBlock.length, n - sent));
      if (shaper) await shaper.acquire(piece.length);
      sent += piece.length;
      if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      if (res.destroyed) return;
    }
    res.end();
  }

  const stats = (opts.stats ??= newTransferStats());
  /**
   * Per image (its chunk index: dropped with the image) and target, the chunks served so far.
   * About a quarter of what the image's index itself costs per chunk.
   */
  const servedTo = new WeakMap<object, Map<string, Set<number>>>();
  function served(index: object, target: string): Set<number> {
    let byTarget = servedTo.get(index);
    if (!byTarget) servedTo.set(index, (byTarget = new Map()));
    let set = byTarget.get(target);
    if (!set) byTarget.set(target, (set = new Set()));
    return set;
  }
  /** With onServed only: how many times each chunk went to each target, per image (as `served`). */
  const timesTo = new WeakMap<object, Map<string, Map<number, number>>>();
  function countServed(index: object, target: string, ref: number): number {
    let byTarget = timesTo.get(index);
    if (!byTarget) timesTo.set(index, (byTarget = new Map()));
    let m = byTarget.get(target);
    if (!m) byTarget.set(target, (m = new Map()));
    const n = (m.get(ref) ?? 0) + 1;
    m.set(ref, n);
    return n;
  }

  /** The request's token checked for `scope` (a manifest root or an ENDPOINT_SCOPES value); a refusal is answered here. */
  function authorize(req: IncomingMessage, res: ServerResponse, scope: string, peer: string | undefined): Extract<VerifyResult, { ok: true }> | undefined {
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const verdict = verifyToken(opts.secret, token, { manifest: scope, now: Date.now(), source: opts.site });
    if (verdict.ok && peer !== undefined && scope !== ENDPOINT_SCOPES.stats && verdict.claims.target !== peer) {
      // A site's certificate used with a token issued to another site: the bytes would go to the
      // wrong site. Both locks must agree on who is asking.
      stats.refused++;
      reply(res, 403, { error: `the token is for target site '${verdict.claims.target}', but the peer's certificate is site '${peer}'`, reason: 'wrong-peer' });
      return undefined;
    }
    if (verdict.ok) return verdict;
    stats.refused++;
    const message = token ? verdict.message : `this route needs 'Authorization: Bearer <token>', a transfer token signed with the federation's secret (agent/transfer/token.ts); only /health is open`;
    reply(res, verdict.reason === 'wrong-manifest' || verdict.reason === 'wrong-site' ? 403 : 401, { error: message, reason: token ? verdict.reason : 'missing' });
    return undefined;
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    let peer: string | undefined;
    if (opts.tls) {
      // The handshake already refused a peer without a certificate chaining to the CA; here, one
      // whose certificate names no site of the federation.
      const who = peerOf(req.socket as TLSSocket, opts.tls);
      if ('refused' in who) {
        stats.refused++;
        return reply(res, 403, { error: who.refused, reason: 'peer' });
      }
      peer = who.site;
    }
    if (req.method === 'GET' && url.pathname === '/health') return reply(res, 200, { ok: true, site: opts.site, ...(peer ? { peer } : {}) });
    if (req.method === 'GET' && url.pathname === '/stats') {
      if (authorize(req, res, ENDPOINT_SCOPES.stats, peer)) reply(res, 200, opts.fronts ? { ...stats, fronts: opts.fronts() } : stats);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/probe') {
      const ok = authorize(req, res, ENDPOINT_SCOPES.probe, peer);
      if (ok) await probeReply(url, req, res, ok.claims.target);
      return;
    }
    const m = /^\/(manifests|chunks|finals)\/([0-9a-f]{64})$/.exec(url.pathname);
    if (!m) return reply(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    const [, kind, root] = m as unknown as [string, 'manifests' | 'chunks' | 'finals', string];

    const verdict = authorize(req, res, root, peer);
    if (!verdict) return;
    if (kind === 'finals') {
      if (req.method !== 'GET') return reply(res, 405, { error: 'use GET for finals' });
      const waitMs = Number(url.searchParams.get('waitMs') ?? '0');
      if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > MAX_FINAL_WAIT_MS) return reply(res, 400, { error: `waitMs '${url.searchParams.get('waitMs')}' is not an integer in 0..${MAX_FINAL_WAIT_MS}` });
      // `digestOf=<root>`: the target holds the image of that root and waits for its digest,
      // announced after it (or for another image: the source's capture was retried).
      const digestOf = url.searchParams.get('digestOf');
      if (digestOf !== null && !/^[0-9a-f]{64}$/.test(digestOf)) return reply(res, 400, { error: `digestOf '${digestOf.slice(0, 80)}' is not a manifest root (64 lower-case hex digits)` });
      // `lost=<root>`: the target was announced that image and this agent no longer holds it (it
      // died after announcing, before it wrote the image down): answered only with an image this
      // agent holds, which its capture's retry announces (another root, or the same frozen data
      // captured again).
      const lost = url.searchParams.get('lost');
      if (lost !== null && !/^[0-9a-f]{64}$/.test(lost)) return reply(res, 400, { error: `lost '${lost.slice(0, 80)}' is not a manifest root (64 lower-case hex digits)` });
      const held = (img: FinalImage) => {
        try {
          return opts.images.get(img.manifest.rootHash) !== undefined;
        } catch {
          // Its metadata unreadable (torn): not an image this agent can serve.
          return false;
        }
      };
      const ready =
        lost !== null
          ? held
          : digestOf === null
            ? undefined
            : (img: FinalImage) => img.digest !== undefined || img.manifest.rootHash !== digestOf;
      const gone = new AbortController();
      res.on('close', () => gone.abort());
      const image = await opts.images.finals.wait(root, waitMs, gone.signal, ready);
      if (gone.signal.aborted) return;
      if (!image) {
        res.writeHead(204);
        return void res.end();
      }
      // The announcement crosses the emulated link like any reply.
      const shaper = opts.shapers && verdict.claims.target !== opts.site ? opts.shapers.get(opts.site, verdict.claims.target) : undefined;
      const d = shaper?.decide();
      if (d && d.delayMs > 0) await new Promise((r) => setTimeout(r, d.delayMs));
      if (d?.drop) return void req.socket.destroy(new LinkDropError(opts.site, verdict.claims.target));
      return reply(res, 200, image);
    }
    const entry = opts.images.get(root);
    if (!entry) return reply(res, 404, { error: `manifest ${root} is not held by site '${opts.site}'` });

    const shaper = opts.shapers && verdict.claims.target !== opts.site ? opts.shapers.get(opts.site, verdict.claims.target) : undefined;
    if (shaper) {
      const d = shaper.decide();
      if (d.delayMs > 0) await new Promise((r) => setTimeout(r, d.delayMs));
      if (d.drop) {
        // A lost request looks like a reset connection, as on a real lossy path.
        req.socket.destroy(new LinkDropError(opts.site, verdict.claims.target));
        return;
      }
    }

    if (kind === 'manifests') {
      if (req.method !== 'GET') return reply(res, 405, { error: 'use GET for manifests' });
      if (url.searchParams.get('format') === 'bin') {
        // The requester names manifests it holds; a delta against the first one this site also
        // knows costs a few bytes per unchanged run instead of ~35 per chunk. Nothing is trusted:
        // the requester checks the result against the root its token names.
        const bases = (url.searchParams.get('base') ?? '').split(',').filter((r) => SHA256_HEX.test(r) && r !== root).slice(0, MAX_MANIFEST_BASES);
        let base;
        for (const r of bases) if ((base = opts.images.deltaBase(r))) break;
        const { bytes } = encodeManifest(entry.manifest, base?.manifest, base?.index);
        opts.tamperManifest?.(bytes, base?.manifest.rootHash);
        if (shaper) await shaper.acquire(bytes.length);
        res.writeHead(200, { 'content-type': BINARY_MANIFEST_TYPE, [MANIFEST_BASE_HEADER]: base?.manifest.rootHash ?? 'none' });
        res.end(bytes);
        return;
      }
      // A manifest is ~110 bytes of JSON per chunk (3.5 MB for 512 MiB in 16 KiB chunks), often
      // more than the delta itself: zstd roughly halves it (the hex digests are half redundant).
      const json = Buffer.from(JSON.stringify(entry.manifest));
      const zstd = /(^|[\s,])zstd([\s,;]|$)/.test(String(req.headers['accept-encoding'] ?? ''));
      const body = zstd ? compressChunk(json, { codec: 'zstd', level: MANIFEST_ZSTD_LEVEL }) : json;
      if (shaper) await shaper.acquire(body.length);
      res.writeHead(200, { 'content-type': 'application/json', ...(zstd ? { 'content-encoding': 'zstd' } : {}) });
      res.end(body);
      return;
    }
    if (req.method !== 'POST') return reply(res, 405, { error: 'use POST for chunk batches' });
    const spec = codecFrom(url);
    if (typeof spec === 'string') return reply(res, 400, { error: spec });
    let hashes: string[];
    try {
      const parsed = JSON.parse(await readBody(req, 64 + MAX_BATCH_HASHES * 70)) as { hashes?: unknown };
      if (!Array.isArray(parsed.hashes) || parsed.hashes.length > MAX_BATCH_HASHES || !parsed.hashes.every((h) => typeof h === 'string')) {
        return reply(res, 400, { error: `body must be {"hashes": [...]} with at most ${MAX_BATCH_HASHES} hashes` });
      }
      hashes = parsed.hashes as string[];
    } catch (err) {
      return reply(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
    }
    const unknown = hashes.filter((h) => !entry.byHash.has(h));
    if (unknown.length) return reply(res, 404, { error: `${unknown.length} chunk(s) are not in manifest ${root.slice(0, 12)}: ${unknown.slice(0, 3).join(', ')}` });

    const sent = served(entry.byHash, verdict.claims.target);
    const again = hashes.map((h) => sent.has(entry.byHash.get(h)!));
    res.writeHead(200, { 'content-type': 'application/octet-stream', [RESENT_HEADER]: encodeResent(again) });
    for (const [k, h] of hashes.entries()) {
      const raw = opts.images.readChunkSync(root, h);
      // The image was released while this batch was served (its round is over): the requester
      // sees the stream end short and asks again, or has moved on.
      if (!raw) return void res.destroy(new Error(`image ${root.slice(0, 12)} was released while chunks of it were being sent`));
      const packed = packChunk(raw, spec);
      if (opts.corrupt?.(h)) packed.writeUInt8(packed.readUInt8(packed.length - 1) ^ 0xff, packed.length - 1);
      const head = Buffer.allocUnsafe(36);
      head.write(h, 0, 'hex');
      head.writeUInt32BE(packed.length, 32);
      if (shaper) await shaper.acquire(head.length + packed.length);
      // Gone while the link was acquired (the requester stopped reading): nothing is served, so
      // nothing is counted, and the chunk is not marked as sent to it.
      if (res.destroyed) return;
      // Both writes, always: with `a && b`, a full socket buffer after the header skipped the
      // chunk's bytes and desynchronised the stream.
      const moreHead = res.write(head);
      const more = res.write(packed) && moreHead;
      stats.chunksServed++;
      stats.rawBytesServed += raw.length;
      stats.bytesServed += head.length + packed.length;
      if (again[k]) stats.resentBytesServed += head.length + packed.length;
      sent.add(entry.byHash.get(h)!);
      if (opts.onServed) {
        const target = verdict.claims.target;
        opts.onServed({ at: Date.now(), from: opts.site, to: target, root, hash: h, n: countServed(entry.byHash, target, entry.byHash.get(h)!) });
      }
      if (!more) await new Promise((r) => res.once('drain', r));
      if (res.destroyed) return;
    }
    res.end();
  };
}

/** `http(s)://host:port`, with an IPv6 host in brackets. */
export function endpointUrlOf(host: string, port: number, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export async function startTransferServer(opts: TransferServerOptions): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const handler = createTransferHandler(opts);
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, { error: String(err) });
      else res.destroy();
    });
  };
  const server: Server = opts.tls ? createHttpsServer(tlsServerOptions(opts.tls), serve) : createServer(serve);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const host = opts.host ?? '127.0.0.1';
  const url = endpointUrlOf(host, (server.address() as AddressInfo).port, !!opts.tls);
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
