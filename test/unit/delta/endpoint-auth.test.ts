/**
 * Only /health of an agent's endpoint is open: /stats and /probe want a token signed with the
 * federation's secret and scoped to the route, and a probe's size is bounded (issue 13).
 * A real transfer server on loopback, asked with real fetch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SourceImages } from '../../../agent/capture/source-images';
import { MAX_PROBE_BYTES, newTransferStats, startTransferServer, type TransferStats } from '../../../agent/transfer/server';
import { claimsFor, endpointToken, ENDPOINT_SCOPES, issueToken } from '../../../agent/transfer/token';

const SECRET = Buffer.alloc(32, 3);
const OTHER_SECRET = Buffer.alloc(32, 4);

describe('the agent endpoint: only /health is open', () => {
  let dir: string;
  let images: SourceImages;
  let url: string;
  let close: () => Promise<void>;
  const stats: TransferStats = newTransferStats();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-endpoint-auth-'));
    images = new SourceImages(join(dir, 'images'));
    ({ url, close } = await startTransferServer({ site: 'dc:a', images, secret: SECRET, stats }));
  });
  after(async () => {
    await close?.();
    await images?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, token?: string) => fetch(`${url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  it('/health answers anyone', async () => {
    const res = await get('/health');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, site: 'dc:a' });
  });

  it('/stats and /probe refuse a request without a token, a forged one, and one for another route, site or manifest', async () => {
    const refused0 = stats.refused;
    const cases: [string, string | undefined, number, RegExp][] = [];
    for (const [path, scope] of [['/stats', 'stats'], ['/probe?bytes=67108864', 'probe'], ['/probe?bytes=0', 'probe']] as const) {
      const other = scope === 'stats' ? 'probe' : 'stats';
      cases.push(
        [path, undefined, 401, /needs 'Authorization: Bearer <token>'.*only \/health is open/],
        [path, 'not-a-token', 401, /not of the form/],
        [path, endpointToken(OTHER_SECRET, scope, 'dc:a', 'dc:b'), 401, /signature does not match/],
        [path, endpointToken(SECRET, other, 'dc:a', 'dc:b'), 403, /is for manifest/],
        [path, endpointToken(SECRET, scope, 'dc:z', 'dc:b'), 403, /for source site 'dc:z', not 'dc:a'/],
        [path, issueToken(SECRET, claimsFor('ab'.repeat(32), 'dc:a', 'dc:b', Date.now(), 600)), 403, /is for manifest/],
        [path, endpointToken(SECRET, scope, 'dc:a', 'dc:b', Date.now() - 3600_000), 401, /expired/],
      );
    }
    for (const [path, token, status, why] of cases) {
      const res = await get(path, token);
      const body = await res.text();
      assert.equal(res.status, status, `${path} with ${token?.slice(0, 12) ?? 'no token'}: ${body.slice(0, 200)}`);
      assert.ok(body.length < 1000, `${path}: a refusal is a short JSON answer, not the probe's filler (${body.length} bytes)`);
      assert.match((JSON.parse(body) as { error: string }).error, why);
    }
    assert.equal(stats.refused - refused0, cases.length, 'each refusal is counted');
  });

  it('with the federation\'s token, /stats answers and /probe streams what was asked', async () => {
    const res = await get('/stats', endpointToken(SECRET, 'stats', 'dc:a', 'operator'));
    assert.equal(res.status, 200);
    assert.equal(typeof ((await res.json()) as TransferStats).refused, 'number');
    const token = endpointToken(SECRET, 'probe', 'dc:a', 'dc:b');
    const probe = await get('/probe?bytes=100000', token);
    assert.equal(probe.status, 200);
    assert.equal((await probe.arrayBuffer()).byteLength, 100_000);
    const rtt = await get('/probe?bytes=0', token);
    assert.equal(rtt.status, 200);
    assert.equal((await rtt.arrayBuffer()).byteLength, 0);
  });

  it('a probe over 64 MiB is refused with a 400 naming the bound', async () => {
    const token = endpointToken(SECRET, 'probe', 'dc:a', 'dc:b');
    for (const bytes of [String(MAX_PROBE_BYTES + 1), '1e12', '-1', '1.5', 'lots']) {
      const res = await get(`/probe?bytes=${bytes}`, token);
      assert.equal(res.status, 400, bytes);
      assert.match(((await res.json()) as { error: string }).error, new RegExp(`probe bytes '${bytes.replace('.', '\\.')}' must be an integer in 0\\.\\.${MAX_PROBE_BYTES} \\(64 MiB`));
    }
  });

  it('route scopes are not manifest roots a volume could have', () => {
    assert.notEqual(ENDPOINT_SCOPES.probe, ENDPOINT_SCOPES.stats);
    for (const s of Object.values(ENDPOINT_SCOPES)) assert.match(s, /^[0-9a-f]{64}$/);
  });
});
