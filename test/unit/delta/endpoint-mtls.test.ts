/**
 * The chunk endpoint on mutual TLS 1.3 (issue 15): a real HTTPS server on loopback, with the
 * federation's certificates made by `fedflow certs`' code (agent/transfer/certs.ts) in a temp dir.
 * Refused: a client with no certificate, one from another CA, a certificate of a site outside the
 * federation, and another site's certificate with a token issued to a different site. Accepted: a
 * pull over TLS by the right site, the server checked to be the source it meant to reach.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { SourceImages } from '../../../agent/capture/source-images';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { caKeyPath, makeFederationCerts, siteKeyPath } from '../../../agent/transfer/certs';
import { fetchFinalImage, fetchManifest, peerAgent, peerFetch, peerPool, pullMissingChunks } from '../../../agent/transfer/client';
import { newTransferStats, startTransferServer, type TransferStats } from '../../../agent/transfer/server';
import { loadSiteTls, PeerIdentityError, TlsMaterialError, type SiteTls } from '../../../agent/transfer/tls';
import { claimsFor, endpointToken, issueToken } from '../../../agent/transfer/token';
import { parseFederationConfig, type FederationConfig } from '../../../core/federation-config';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 9);
const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };
const site = (id: string) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 1 } });

describe('the chunk endpoint on mutual TLS', () => {
  let dir: string;
  let config: FederationConfig;
  /** The same federation name, another CA: its certificates must not be accepted. */
  let rogue: FederationConfig;
  /** A site the CA signed, left out of the federation's config the server holds. */
  let withGone: FederationConfig;
  const tls: Record<string, SiteTls> = {};
  let rogueB: SiteTls;
  let goneTls: SiteTls;
  let images: SourceImages;
  let manifest: Manifest;
  let url: string;
  let close: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startTransferServer>>['server'];
  const stats: TransferStats = newTransferStats();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-mtls-'));
    config = parseFederationConfig({ federation: 'fed', sites: ['dc:a', 'dc:b', 'dc:c'].map(site) });
    withGone = parseFederationConfig({ federation: 'fed', sites: ['dc:a', 'dc:b', 'dc:c', 'dc:gone'].map(site) });
    rogue = config;
    makeFederationCerts(join(dir, 'home', 'tls'), withGone);
    makeFederationCerts(join(dir, 'rogue', 'tls'), rogue, ['dc:b']);
    for (const s of ['dc:a', 'dc:b', 'dc:c']) tls[s] = loadSiteTls(config, s, join(dir, 'home'));
    goneTls = loadSiteTls(withGone, 'dc:gone', join(dir, 'home'));
    rogueB = loadSiteTls(rogue, 'dc:b', join(dir, 'rogue'));

    const file = join(dir, 'vol.img');
    writeFileSync(file, Buffer.from(seededBytes(400_000, 5)));
    images = new SourceImages(join(dir, 'images'));
    ({ manifest } = await images.capture('vol', file, PARAMS, { inPlace: true }));
    ({ url, close, server } = await startTransferServer({ site: 'dc:a', images, secret: SECRET, stats, tls: tls['dc:a']! }));
  });
  after(async () => {
    await close?.();
    await images?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One HTTPS GET with the given client material (any of it may be missing), server checked against the CA only. */
  function get(path: string, client: Partial<Pick<SiteTls, 'cert' | 'key'>>, token?: string, ca: Buffer = tls['dc:a']!.ca): Promise<{ status: number; body: string }> {
    const opts: RequestOptions = { ca, cert: client.cert, key: client.key, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} };
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, opts, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('makes keys 0600 and certificates whose SAN names the site (URI spiffe and DNS)', () => {
    for (const key of [caKeyPath(join(dir, 'home', 'tls')), siteKeyPath(join(dir, 'home', 'tls'), 'dc:a')]) assert.equal(statSync(key).mode & 0o777, 0o600, key);
    const cert = new X509Certificate(tls['dc:a']!.cert);
    assert.equal(cert.subjectAltName, 'URI:spiffe://fed/site/dc/a, DNS:a.dc.fed.fedflow');
    assert.ok(cert.checkIssued(new X509Certificate(tls['dc:a']!.ca)));
    assert.ok(url.startsWith('https://127.0.0.1:'), url);
  });

  it('serves a federation site presenting its own certificate, and says who it took it for', async () => {
    const res = await get('/health', tls['dc:b']!);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { ok: true, site: 'dc:a', peer: 'dc:b' });
  });

  it('refuses a client with no certificate, in the handshake', async () => {
    await assert.rejects(get('/health', {}), (err: NodeJS.ErrnoException) => {
      assert.match(`${err.code} ${err.message}`, /certificate required|ECONNRESET|socket hang up/i);
      return true;
    });
  });

  it('refuses a certificate from another CA, in the handshake', async () => {
    await assert.rejects(get('/health', rogueB), (err: NodeJS.ErrnoException) => {
      assert.match(`${err.code} ${err.message}`, /unknown ca|ECONNRESET|socket hang up/i);
      return true;
    });
  });

  it("refuses the CA's certificate for a site that is not in the federation", async () => {
    const refused0 = stats.refused;
    const res = await get('/health', goneTls);
    assert.equal(res.status, 403);
    assert.match((JSON.parse(res.body) as { error: string }).error, /names site 'dc:gone', which is not a site of federation 'fed'/);
    assert.equal(stats.refused, refused0 + 1);
  });

  it("refuses another site's certificate presenting a token issued to a different site (both locks must agree)", async () => {
    const token = issueToken(SECRET, claimsFor(manifest.rootHash, 'dc:a', 'dc:b', Date.now(), 600));
    const asC = await get(`/manifests/${manifest.rootHash}`, tls['dc:c']!, token);
    assert.equal(asC.status, 403, asC.body);
    assert.match((JSON.parse(asC.body) as { error: string }).error, /token is for target site 'dc:b', but the peer's certificate is site 'dc:c'/);
    const asB = await get(`/manifests/${manifest.rootHash}`, tls['dc:b']!, token);
    assert.equal(asB.status, 200, 'the site the token names is served');
    const probeAsC = await get('/probe?bytes=0', tls['dc:c']!, endpointToken(SECRET, 'probe', 'dc:a', 'dc:b'));
    assert.equal(probeAsC.status, 403, 'probes too');
  });

  it('still wants the token with a good certificate: TLS does not replace the second lock', async () => {
    const res = await get(`/manifests/${manifest.rootHash}`, tls['dc:b']!);
    assert.equal(res.status, 401);
  });

  it('refuses TLS 1.2', async () => {
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const u = new URL(url);
        const s = connect({ host: u.hostname, port: Number(u.port), ca: tls['dc:b']!.ca, cert: tls['dc:b']!.cert, key: tls['dc:b']!.key, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined }, () => {
          s.end();
          resolve();
        });
        s.on('error', reject);
      }),
      /protocol version|ECONNRESET/i,
    );
  });

  it('pulls a volume over mutual TLS, and the client refuses a server that is not the source it meant', async () => {
    const store = await ChunkStore.open(join(dir, 'store-b'));
    const token = issueToken(SECRET, claimsFor(manifest.rootHash, 'dc:a', 'dc:b', Date.now(), 600));
    const peer = { site: 'dc:a', tls: tls['dc:b']! };
    const m = await fetchManifest(url, manifest.rootHash, token, undefined, { peer });
    const figures = await pullMissingChunks({ endpoint: url, root: manifest.rootHash, token, manifest: m, store, plan: { codec: { codec: 'lz4' }, streams: 3, batchBytes: 64 << 10 }, to: 'dc:b', peer });
    assert.equal(figures.chunksFetched, manifest.chunks.length);
    assert.ok(manifest.chunks.every((c) => store.has(c.hash)));
    // The same URL, taken for dc:c's agent: the server's certificate says dc:a, so the call stops.
    await assert.rejects(fetchManifest(url, manifest.rootHash, token, undefined, { peer: { site: 'dc:c', tls: tls['dc:b']! } }), (err: Error) => {
      assert.ok(err instanceof PeerIdentityError, String(err));
      assert.match(err.message, /presents the certificate of site 'dc:a', but this call is to 'dc:c'/);
      return true;
    });
    // An agent with TLS never talks plain HTTP because a URL said so.
    await assert.rejects(fetchManifest(url.replace('https:', 'http:'), manifest.rootHash, token, undefined, { peer }), (err: Error) => err instanceof TlsMaterialError && /is not https/.test(err.message));
  });

  it('knows the peer on a resumed TLS session too (a new connection that skips the full handshake)', async () => {
    const agent = peerAgent(url, { site: 'dc:a', tls: tls['dc:b']! }, { keepAlive: false, maxSockets: 1 });
    const seen: { reused: boolean; body: string }[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        seen.push(
          await new Promise((resolve, reject) => {
            const req = request(`${url}/health`, { agent }, (res) => {
              const reused = (res.socket as TLSSocket).isSessionReused();
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve({ reused, body }));
            });
            req.on('error', reject);
            req.end();
          }),
        );
      }
    } finally {
      agent.destroy();
    }
    assert.ok(seen.some((x) => x.reused), 'a later connection resumed the session');
    for (const x of seen) assert.deepEqual(JSON.parse(x.body), { ok: true, site: 'dc:a', peer: 'dc:b' });
  });

  it("reuses one pool per peer: a peer's later calls do no handshake, and a connection the server dropped is not used again", async () => {
    // The server's completed TLS handshakes (each a new connection).
    let handshakes = 0;
    const count = () => void handshakes++;
    server.on('secureConnection', count);
    try {
      const token = issueToken(SECRET, claimsFor(manifest.rootHash, 'dc:a', 'dc:b', Date.now(), 600));
      const peer = { site: 'dc:a', tls: tls['dc:b']! };
      assert.equal(peerPool(url, peer), peerPool(url, { ...peer }), 'the same peer, the same pool');
      assert.notEqual(peerPool(url, peer), peerPool(url, { site: 'dc:c', tls: tls['dc:b']! }), 'another site the server must prove: another pool');
      assert.notEqual(peerPool(url, peer), peerPool(url, { site: 'dc:a', tls: tls['dc:c']! }), "another agent's material: another pool");
      // Dropped first: whatever earlier tests left in the pool is gone, so the count starts at 0.
      server.closeAllConnections();
      await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < 3; i++) assert.equal((await fetchManifest(url, manifest.rootHash, token, undefined, { peer })).rootHash, manifest.rootHash);
      assert.equal(handshakes, 1, 'three calls, one handshake');
      // A pull over 3 streams opens at most 2 more; a second pull (an empty store: everything again) none.
      const plan = { codec: { codec: 'lz4' as const }, streams: 3, batchBytes: 64 << 10 };
      for (const name of ['store-pool-1', 'store-pool-2']) {
        const store = await ChunkStore.open(join(dir, name));
        const figures = await pullMissingChunks({ endpoint: url, root: manifest.rootHash, token, manifest, store, plan, to: 'dc:b', peer });
        assert.equal(figures.chunksFetched, manifest.chunks.length);
      }
      assert.ok(handshakes <= 3, `two pulls over 3 streams after the manifests made ${handshakes} handshakes in all`);
      const afterPulls = handshakes;
      assert.equal(await fetchFinalImage(url, 'no-such-slot', token, 1, undefined, peer).catch(() => 'refused'), 'refused');
      assert.equal(handshakes, afterPulls, 'the long poll goes over the pool too');
      // A free socket is dropped a second before the server would close it idle (its Keep-Alive hint, 30 s).
      const free = Object.values(peerPool(url, peer).freeSockets).flat();
      assert.ok(free.length >= 1);
      for (const sock of free) assert.equal(sock!.timeout, 29_000);
      // The counter counts: a call outside the pool makes its own.
      const before = handshakes;
      const fresh = peerAgent(url, peer, { keepAlive: false, maxSockets: 1 });
      try {
        await new Promise<void>((resolve, reject) => {
          const req = request(`${url}/health`, { agent: fresh }, (res) => res.resume().on('end', resolve));
          req.on('error', reject);
          req.end();
        });
      } finally {
        fresh.destroy();
      }
      assert.equal(handshakes, before + 1);
      // The server drops the pooled connection (an agent restarting, an idle timeout): the next call opens another.
      server.closeAllConnections();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal((await fetchManifest(url, manifest.rootHash, token, undefined, { peer })).rootHash, manifest.rootHash);
      assert.equal(handshakes, before + 2);
    } finally {
      server.off('secureConnection', count);
    }
  });

  it('probes over mutual TLS (the link telemetry fetch)', async () => {
    const f = peerFetch(url, { site: 'dc:a', tls: tls['dc:b']! });
    try {
      const res = await f.fetch(`${url}/probe?bytes=100000`, { headers: { authorization: `Bearer ${endpointToken(SECRET, 'probe', 'dc:a', 'dc:b')}` } });
      assert.equal(res.status, 200);
      let n = 0;
      for await (const c of res.body) n += (c as Buffer).length;
      assert.equal(n, 100_000);
    } finally {
      f.close();
    }
  });
});

describe('loading TLS material', () => {
  let dir: string;
  const config = parseFederationConfig({ federation: 'fed', sites: ['dc:a', 'dc:b'].map(site) });
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-mtls-load-'));
    makeFederationCerts(join(dir, 'tls'), config);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a key others can read, another site's certificate, and a missing file, each saying what to do", async () => {
    const { chmodSync } = await import('node:fs');
    const key = siteKeyPath(join(dir, 'tls'), 'dc:a');
    chmodSync(key, 0o644);
    assert.throws(() => loadSiteTls(config, 'dc:a', dir), /has mode 0644; a private key must be readable by its owner only: chmod 600/);
    chmodSync(key, 0o600);
    assert.ok(loadSiteTls(config, 'dc:a', dir));
    const other = { ca: join(dir, 'tls', 'ca.pem'), cert: join(dir, 'tls', 'sites', 'dc_b', 'cert.pem'), key: join(dir, 'tls', 'sites', 'dc_b', 'key.pem') };
    assert.throws(() => loadSiteTls(config, 'dc:a', dir, other), /names dc:b .*agent 'dc:a' needs one naming URI:spiffe:\/\/fed\/site\/dc\/a/);
    assert.throws(() => loadSiteTls(config, 'dc:a', dir, { ...other, cert: join(dir, 'nope.pem') }), /cannot read the certificate of site 'dc:a' .*nope\.pem: ENOENT \(make it with `fedflow certs`/);
  });
});
