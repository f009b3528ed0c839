/**
 * The hosts tier (issue 15): every site a host of its own. Four sites in four network namespaces
 * on a bridge, each with its own address, its own FEDFLOW_HOME and only its own key and
 * certificate (plus the CA's certificate, never the CA's key); the Temporal dev server in a
 * namespace of its own; each site's agent started by the command line of deploy/fedflow-agent.service,
 * the control worker by deploy/fedflow-control.service, in the test's namespace (the operator's
 * host). One federation is set up (before) for every test of the file, by the hosts tier's shared
 * set-up (test/helpers/hosts-federation.ts, which also checks each public key and that no agent
 * host holds the CA's key):
 * - dc:paris's link has a one-way delay of LINK_DELAY_MS each way, emulated in process
 *   (test/helpers/delay-proxy.ts: this kernel has no `netem`), by a proxy on paris's host in front
 *   of its agent; paris advertises the proxy's port as its agentUrl.
 * - The sample workload is deployed on dc:paris, run on that host (test/helpers/sample-on-host.ts), then
 *   migrated to dc:frankfurt over the bridge, agent to agent on mutual TLS, with its link shaped by
 *   `tc tbf`; the target's agent is killed with -9 during the migration and started again by the
 *   same command line, as systemd restarts it. Over the bridge, an endpoint refuses a client with
 *   no certificate, one from another CA, and another site's certificate presenting a token issued
 *   to a third site.
 * - dc:london (trusted) is cut off (its link down): the federation log still commits with the two
 *   other trusted sites, and once the link is back london's replica reaches the same head.
 * - dc:frankfurt is cut off in the middle of a transfer, for longer than the pull's heartbeat
 *   timeout: the pull is retried when the link is back and completes, and no chunk that frankfurt
 *   had verified is served to it again (paris's served log, FEDFLOW_SERVED_LOG, against
 *   frankfurt's chunk index, read as the transfer goes).
 * Everything (processes, namespaces, bridge, qdiscs, homes) is removed at the end, also after a
 * failure.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { caCertPath, siteCertPath, siteKeyPath } from '../../agent/transfer/certs';
import { parseServedLog } from '../../agent/transfer/served-log';
import { endpointToken } from '../../agent/transfer/token';
import { agentGetJson } from '../helpers/agent-fetch';
import { AGENT_PORT, DELAY_PROXY_PORT, startHostsFederation, type DeployedSampleOnHost, type HostsFederation } from '../helpers/hosts-federation';
import { hostsUnavailable } from '../helpers/netns';
import { readFederationLog, storedChunks } from '../helpers/site-files';
import { killHard } from '../helpers/worker-process';

const SITES = ['dc:paris', 'dc:frankfurt', 'dc:london', 'edge:lisbon'] as const;
const TRUST: Record<string, 'trusted' | 'untrusted'> = { 'edge:lisbon': 'untrusted' };
const KEYS = 400;
const SECRET = 'cd'.repeat(32);
/** One-way delay on dc:paris's link: a round trip to its agent gets 2 × this (30 ms, two sites some 1,500 km apart). */
const LINK_DELAY_MS = 15;
/** How long dc:london stays cut off, at least. */
const LONDON_CUT_MS = 15_000;
/** The bulk workload of the mid-transfer partition: 1,536 keys of 16 KiB, some 25 MB of volume. */
const BULK_KEYS = 1536;
const BULK_VALUE_BYTES = 16_384;
/** Longer than the pull's heartbeat timeout (15 s, workflows/migration/proxies.ts): the server gives the attempt up, and the pull is retried. */
const TARGET_CUT_MS = 25_000;

/** One HTTPS GET over the bridge with the given client material (the server checked against the CA only). */
function httpsGet(url: string, tls: { ca: Buffer; cert?: Buffer; key?: Buffer }, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.end();
  });
}

const unavailable = hostsUnavailable();

/** Polls `check` every `everyMs` until it returns a value, or fails with `what` after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('four sites on four hosts, Temporal on a fifth: a migration across them', { skip: unavailable }, () => {
  // The federation every test of this file runs on (made in before()).
  let fed: HostsFederation | undefined;
  const servedLogOf = (home: string) => join(home, 'served.log');

  /** Deploys the sample (as `workloadId`) on `site`'s host and fills it; its instance runs in that namespace. */
  async function deploySample(site: string, keys: number, opts: { workloadId?: string; valueBytes?: number } = {}): Promise<DeployedSampleOnHost> {
    const added = await fed!.deploySample({ site, keys, ...opts });
    assert.equal(added.site, site);
    assert.equal(added.keys, keys);
    return added;
  }

  before(async () => {
    fed = await startHostsFederation({
      sites: SITES,
      trust: TRUST,
      secret: SECRET,
      // The delay on paris's link: a proxy on paris's host, in front of its agent.
      delayMs: { 'dc:paris': LINK_DELAY_MS },
      // What paris's endpoint serves, to whom and when: the mid-transfer partition reads it.
      agentEnv: { 'dc:paris': (home) => ({ FEDFLOW_SERVED_LOG: servedLogOf(home) }) },
    });
    for (const s of SITES) {
      // Advertised: the host's address, on the proxy's port for paris; listening: the agent's own.
      const port = s === 'dc:paris' ? DELAY_PROXY_PORT : AGENT_PORT;
      assert.match(fed.agents[s]!.output(), new RegExp(`endpoint https://${fed.net.hosts[s]!.ip.replace(/\./g, '\\.')}:${port} \\(listening on https://0\\.0\\.0\\.0:${AGENT_PORT}\\), mutual TLS 1\\.3`));
    }
  });
  after(async () => {
    // Removes the processes, the namespaces (their qdiscs, links and any cut go with them) and the homes.
    await fed?.stop();
  });

  it('migrates the sample workload from dc:paris to dc:frankfurt, agent to agent on mutual TLS, each agent started by its unit', async () => {
    const { config, homeOf, client: c } = fed!;
    const certs = fed!.certs!;
    // Each agent answers over the bridge, to a peer presenting another site's certificate (from that site's home).
    for (const s of SITES) {
      const as = s === 'dc:paris' ? 'dc:frankfurt' : 'dc:paris';
      const health = await agentGetJson<{ site: string; peer: string }>({ home: homeOf(as), config, site: s, path: '/health', as, url: config.sites.find((x) => x.id === s)!.agentUrl! });
      assert.deepEqual(health, { ok: true, site: s, peer: as });
    }

    // Over the bridge, dc:paris's endpoint refuses a client with no certificate and one from another
    // CA (in the handshake), and another site's certificate with a token issued to a third site.
    const parisUrl = config.sites.find((x) => x.id === 'dc:paris')!.agentUrl!;
    const caPem = readFileSync(caCertPath(certs));
    await assert.rejects(httpsGet(`${parisUrl}/health`, { ca: caPem }), 'no client certificate: refused');
    const rogue = join(fed!.root, 'rogue-ca');
    execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs', '--out', rogue, '--site', 'dc:frankfurt'], { env: { ...process.env, FEDFLOW_CONFIG: fed!.configPath('control') }, stdio: 'pipe' });
    await assert.rejects(httpsGet(`${parisUrl}/health`, { ca: caPem, cert: readFileSync(siteCertPath(rogue, 'dc:frankfurt')), key: readFileSync(siteKeyPath(rogue, 'dc:frankfurt')) }), 'a certificate from another CA: refused');
    const frankfurtTls = { ca: caPem, cert: readFileSync(siteCertPath(certs, 'dc:frankfurt')), key: readFileSync(siteKeyPath(certs, 'dc:frankfurt')) };
    const wrongPeer = await httpsGet(`${parisUrl}/probe?bytes=0`, frankfurtTls, endpointToken(Buffer.from(SECRET, 'hex'), 'probe', 'dc:paris', 'dc:london'));
    assert.equal(wrongPeer.status, 403, wrongPeer.body);
    assert.match(wrongPeer.body, /token is for target site 'dc:london', but the peer's certificate is site 'dc:frankfurt'/);

    // The link to paris has its delay: a request on a new connection (TCP, TLS 1.3 and the HTTP
    // exchange: three round trips) takes at least one round trip of 2 × LINK_DELAY_MS. A lower
    // bound only: a loaded machine makes it slower, never faster.
    const t0 = performance.now();
    assert.equal((await httpsGet(`${parisUrl}/health`, frankfurtTls)).status, 200);
    const rttMs = performance.now() - t0;
    assert.ok(rttMs >= 2 * LINK_DELAY_MS - 1, `a request to dc:paris's agent took ${rttMs.toFixed(1)} ms; its link's delay alone is 2 × ${LINK_DELAY_MS} ms`);

    // The sample workload is deployed on its host (its instance runs in dc:paris's namespace) and filled.
    const added = await deploySample('dc:paris', KEYS);

    // The link out of dc:paris is a 200 Mbit/s one.
    fed!.shape('dc:paris', 200);

    await c.startMigration({ workloadId: added.workloadId, targetSite: 'dc:frankfurt' });
    // The target's agent dies with kill -9 once the migration runs, and comes back as systemd's
    // Restart=always brings it back: the same command line, a second later. The migration completes.
    await until('the migration validated', 60_000, async () => ((await c.getProgress(added.workloadId)).steps[0]?.status === 'done' ? true : undefined), 100);
    await killHard(fed!.agents['dc:frankfurt']!);
    await new Promise((r) => setTimeout(r, 1000));
    await fed!.startAgent('dc:frankfurt', 'agent dc:frankfurt (restarted)');
    const r = await c.waitForResult(added.workloadId);
    assert.equal(r.status, 'completed', JSON.stringify(r).slice(0, 800));
    assert.equal(r.source, 'dc:paris');
    assert.equal(r.target, 'dc:frankfurt');
    assert.equal(r.keys, KEYS, 'every key verified on the target host');
    // 400 KiB of sample values, LZ4-compressed on the wire in datacenter mode: well over 100 kB crosses.
    assert.ok(r.bytesTransferred > 100_000, `the volume crossed the bridge (${r.bytesTransferred} bytes)`);
    // The target host holds the volume in its own home; the source's home is another directory.
    assert.ok(existsSync(join(siteDir('dc:frankfurt', homeOf('dc:frankfurt')), 'chunks')), "the chunks are in dc:frankfurt's home");
    console.log(`hosts: migrated ${added.workloadId} dc:paris -> dc:frankfurt across namespaces in ${r.durationMs} ms, downtime ${r.downtimeMs} ms, ${r.bytesTransferred} bytes on the wire (${r.decision.reason}); a request to paris through its ${LINK_DELAY_MS} ms link took ${rttMs.toFixed(0)} ms`);
  });

  it('a partition of one trusted site: the quorum goes on, and the site catches up when the link comes back', async () => {
    const { config, homeOf, client: c, net: hosts } = fed!;
    const logOf = (s: string) => readFederationLog(siteDir(s, homeOf(s)));
    const log = c.federation(config.federation);
    // Nothing in flight before the cut: london holds every committed entry.
    const commitBefore = await until('dc:london holding the commit index of dc:paris', 60_000, () => {
      const [p, l] = [logOf('dc:paris'), logOf('dc:london')];
      return p.meta.commit > 0 && l.meta.commit >= p.meta.commit ? p.meta.commit : undefined;
    });

    hosts.partition('dc:london');
    const cutAt = Date.now();
    let committed: number[];
    try {
      // Three proposals on trusted sites only (CFT over paris, frankfurt and london: 2 of 3 needed),
      // each a reservation taken and given back (no capacity held after). Each commits without london.
      committed = [];
      for (let i = 1; i <= 3; i++) {
        const workload = `partition-probe-${i}`;
        const res = await log.propose([
          { kind: 'reservation', op: 'reserve', workload, site: 'dc:paris', instances: 1 },
          { kind: 'reservation', op: 'release', workload, site: 'dc:paris' },
        ]);
        assert.equal(res.protocol, 'cft');
        assert.equal(res.summary.protocol, 'cft');
        if (res.summary.protocol !== 'cft') return;
        assert.deepEqual(res.summary.ackedBy, ['dc:frankfurt', 'dc:paris'], `committed by the two reachable trusted sites (round ${res.round})`);
        assert.deepEqual(res.quorum, { needed: 2, total: 3, got: 2 });
        committed.push(res.summary.index);
      }
      const head = committed[committed.length - 1]!;
      // The reachable sites' replicas hold the entries, committed (commit indexes reach them with
      // the next append or the idle heartbeat); london's holds none of them.
      for (const s of ['dc:paris', 'dc:frankfurt']) {
        await until(`${s}'s replica committing index ${head}`, 30_000, () => (logOf(s).meta.commit >= head ? true : undefined));
      }
      // Cut for a while: long past the deliveries' timeouts, london's worker loses Temporal too.
      await new Promise((r) => setTimeout(r, Math.max(0, cutAt + LONDON_CUT_MS - Date.now())));
      const cut = logOf('dc:london');
      assert.ok(cut.entries.length < committed[0]! && cut.meta.commit < committed[0]!, `cut off, dc:london's replica got none of them (its last index ${cut.entries.length}, commit ${cut.meta.commit}, ${commitBefore} before the cut; the first entry committed without it is ${committed[0]})`);
    } finally {
      hosts.heal('dc:london');
    }

    // Back on the bridge, london's replica catches up: the same entries as paris's up to the head, committed.
    const head = committed[committed.length - 1]!;
    const t0 = Date.now();
    const caught = await until(`dc:london catching up to index ${head} once its link is back`, 120_000, () => {
      const l = logOf('dc:london');
      return l.meta.commit >= head ? l : undefined;
    });
    const paris = logOf('dc:paris');
    assert.deepEqual(caught.entries.slice(0, head), paris.entries.slice(0, head), "dc:london's replica holds the same entries as dc:paris's");
    for (const i of committed) {
      const e = caught.entries[i - 1]!;
      assert.equal(e.kind, 'value');
      if (e.kind === 'value') assert.equal(e.value.kind, 'reservation');
    }
    console.log(`hosts: with dc:london cut off, ${committed.length} proposals committed (indexes ${committed.join(', ')}) by dc:paris and dc:frankfurt; london caught up to ${head} ${((Date.now() - t0) / 1000).toFixed(1)} s after its link came back`);
  });

  it('a partition of the target in the middle of a transfer: the transfer resumes when healed, with no verified chunk sent twice', async () => {
    const { homeOf, client: c, net: hosts } = fed!;
    const target = 'dc:frankfurt';
    const bulk = await deploySample('dc:paris', BULK_KEYS, { workloadId: 'bulk', valueBytes: BULK_VALUE_BYTES });
    // A slow link out of paris, so the transfer of some 25 MB takes a while: 16 Mbit/s.
    fed!.shape('dc:paris', 16);
    const storeDir = join(siteDir(target, homeOf(target)), 'chunks');
    const servedLog = servedLogOf(homeOf('dc:paris'));
    const readServed = () => (existsSync(servedLog) ? parseServedLog(readFileSync(servedLog, 'utf8')) : []).filter((e) => e.to === target && e.at >= t0);
    // When each chunk was first seen in the target's store (verified: its hash checked, then its
    // index record written), read every 100 ms as the transfer goes. A time seen is never earlier
    // than the chunk was verified.
    const t0 = Date.now();
    const seenAt = new Map<string, number>();
    const heldBefore = storedChunks(storeDir);
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = Date.now();
        for (const h of storedChunks(storeDir)) if (!heldBefore.has(h) && !seenAt.has(h)) seenAt.set(h, now);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    let cutAt = 0;
    let healedAt = 0;
    let verifiedAtCut = 0;
    try {
      await c.startMigration({ workloadId: bulk.workloadId, targetSite: target });
      // Cut once the target has verified some chunks of this transfer (and it is not done).
      verifiedAtCut = await until('the target verifying the first chunks of the bulk transfer', 180_000, () => {
        const served = new Set(readServed().map((e) => e.hash));
        const verified = [...seenAt.keys()].filter((h) => served.has(h)).length;
        return verified >= 50 ? verified : undefined;
      }, 100);
      hosts.partition(target);
      cutAt = Date.now();
      await new Promise((r) => setTimeout(r, TARGET_CUT_MS));
    } finally {
      hosts.heal(target);
      healedAt = Date.now();
    }
    try {
      const r = await c.waitForResult(bulk.workloadId);
      assert.equal(r.status, 'completed', JSON.stringify(r).slice(0, 800));
      assert.equal(r.keys, BULK_KEYS, 'every key verified on the target host');
      // The chunks the source served to the target, in order, and when the target held each.
      const served = readServed();
      const afterHeal = served.filter((e) => e.at >= healedAt);
      assert.ok(afterHeal.length > 0, 'the transfer went on after the link came back (else the cut came too late to test anything)');
      const verifiedBeforeCut = [...seenAt].filter(([, at]) => at <= cutAt).length;
      assert.ok(verifiedBeforeCut >= verifiedAtCut, `${verifiedBeforeCut} chunks verified before the cut`);
      // No chunk served after the target was seen holding it: none asked for again once verified.
      const twice = served.filter((e) => seenAt.has(e.hash) && e.at > seenAt.get(e.hash)!);
      assert.deepEqual(twice.map((e) => `${e.hash.slice(0, 12)} served at ${e.at - t0} ms (copy ${e.n}), verified by ${seenAt.get(e.hash)! - t0} ms`), [], 'no verified chunk sent twice');
      // The pull was given up by the server during the cut and retried: the resume path ran.
      const pulls = r.rounds.filter((x) => x.kind === 'precopy');
      assert.ok(pulls.some((x) => (x.attempts ?? 1) >= 2), `a pre-copy pull was retried after the cut (attempts: ${pulls.map((x) => x.attempts).join(', ')})`);
      const copies = served.filter((e) => e.n > 1).length;
      console.log(
        `hosts: ${target} cut off ${((cutAt - t0) / 1000).toFixed(1)} s into the bulk migration for ${TARGET_CUT_MS / 1000} s with ${verifiedBeforeCut} chunks verified; ` +
          `completed ${((Date.now() - healedAt) / 1000).toFixed(1)} s after the heal; ${served.length} chunks served, ${afterHeal.length} after the heal, ${copies} served a second time (none verified before), ` +
          `pull attempts ${pulls.map((x) => x.attempts).join(', ')}, resent ${pulls.map((x) => x.resentBytes ?? 0).join(', ')} bytes`,
      );
    } finally {
      watching = false;
      await watcher;
      fed!.shape('dc:paris', undefined);
    }
  });
});
