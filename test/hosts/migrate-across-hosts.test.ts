/**
 * The hosts tier (issue 15): every site a host of its own. Four sites in four network namespaces
 * on a bridge, each with its own address, its own FEDFLOW_HOME and only its own key and
 * certificate (plus the CA's certificate, never the CA's key); the Temporal dev server in a
 * namespace of its own; each site's agent started by the command line of deploy/fedflow-agent.service,
 * the control worker by deploy/fedflow-control.service, in the test's namespace (the operator's
 * host). The sample workload is added on dc:paris by `fedflow workloads add`, run on that host, then
 * migrated to dc:frankfurt over the bridge, agent to agent on mutual TLS, with its link shaped by
 * `tc tbf`; the target's agent is killed with -9 during the migration and started again by the
 * same command line, as systemd restarts it. Over the bridge, an endpoint refuses a client with no certificate, one from another CA,
 * and another site's certificate presenting a token issued to a third site. Everything (processes, namespaces, bridge, homes) is removed at the end, also after a
 * failure.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { caCertPath, siteCertPath, siteKeyPath } from '../../agent/transfer/certs';
import { FedflowClient } from '../../client';
import { endpointToken } from '../../agent/transfer/token';
import { parseFederationConfig } from '../../core/federation-config';
import { devServerSearchAttributeArgs } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { agentGetJson } from '../helpers/agent-fetch';
import { createHosts, hostsUnavailable, type Hosts } from '../helpers/netns';
import { readUnit, startCommand, unitCommand } from '../helpers/units';
import { killHard, type WorkerProcess } from '../helpers/worker-process';

const SITES = ['dc:paris', 'dc:frankfurt', 'dc:london', 'edge:lisbon'] as const;
const TRUST: Record<string, 'trusted' | 'untrusted'> = { 'edge:lisbon': 'untrusted' };
const AGENT_PORT = 7443;
const TEMPORAL_PORT = 7233;
const KEYS = 400;
const SECRET = 'cd'.repeat(32);

async function waitTcp(host: string, port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
      s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} (${host}:${port}) did not accept connections within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

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

describe('four sites on four hosts, Temporal on a fifth: a migration across them', { skip: unavailable }, () => {
  let net: Hosts | undefined;
  let root: string;
  const procs: WorkerProcess[] = [];
  let connection: Connection | undefined;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'fedflow-hosts-'));
    net = createHosts(['temporal', ...SITES]);
  });
  after(async () => {
    await connection?.close().catch(() => undefined);
    for (const p of procs) await killHard(p).catch(() => undefined);
    net?.teardown();
    rmSync(root, { recursive: true, force: true });
  });

  it('migrates the sample workload from dc:paris to dc:frankfurt, agent to agent on mutual TLS, each agent started by its unit', async () => {
    const hosts = net!;
    const temporalIp = hosts.hosts.temporal!.ip;
    const homeOf = (who: string) => join(root, who.replace(':', '_'));
    const configPath = (who: string) => join(homeOf(who), 'federation.json');

    // Each host's consensus key is made on it; only the public keys go into the shared config.
    const publicKey: Record<string, string> = {};
    for (const s of SITES) {
      // On the site's host, by the command an operator runs there (`fedflow site-key`).
      mkdirSync(homeOf(s), { recursive: true });
      writeFileSync(configPath(s), JSON.stringify({ federation: 'hosts', sites: SITES.map((id) => ({ id, provider: 'local', trust: TRUST[id] ?? 'trusted', capacity: { instances: 2 } })) }));
      publicKey[s] = execFileSync(hosts.exec(s)[0]!, [...hosts.exec(s).slice(1), join(REPO_ROOT, 'bin', 'fedflow'), 'site-key', '--site', s], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FEDFLOW_HOME: homeOf(s), FEDFLOW_CONFIG: configPath(s) }, encoding: 'utf8' }).trim();
      assert.match(publicKey[s]!, /^[A-Za-z0-9+/]+=*$/, `${s}'s public key`);
    }
    const raw = {
      federation: 'hosts',
      sites: SITES.map((id) => ({
        id,
        provider: 'local',
        trust: TRUST[id] ?? 'trusted',
        capacity: { instances: 2 },
        listen: { host: '0.0.0.0', port: AGENT_PORT },
        agentUrl: `https://${hosts.hosts[id]!.ip}:${AGENT_PORT}`,
        publicKey: publicKey[id],
      })),
    };
    const config = parseFederationConfig(raw);
    for (const who of [...SITES, 'control']) {
      mkdirSync(homeOf(who), { recursive: true });
      writeFileSync(configPath(who), JSON.stringify(raw));
    }

    // Certificates made where the CA lives, then each host gets the CA's certificate and only its own key.
    const certs = join(root, 'ca-host');
    execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs', '--out', certs], { env: { ...process.env, FEDFLOW_CONFIG: configPath('control') }, stdio: 'pipe' });
    for (const s of SITES) {
      const tls = join(homeOf(s), 'tls');
      for (const [from, to, mode] of [
        [caCertPath(certs), caCertPath(tls), 0o644],
        [siteCertPath(certs, s), siteCertPath(tls, s), 0o644],
        [siteKeyPath(certs, s), siteKeyPath(tls, s), 0o600],
      ] as const) {
        mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
        copyFileSync(from, to);
        chmodSync(to, mode);
      }
      assert.ok(!existsSync(join(tls, 'ca.key')), 'no CA key on an agent host');
    }

    // Temporal on a host of its own.
    const cli = findTemporalCli({ log: () => undefined }).path;
    const temporal = startCommand('temporal', { argv: [cli, 'server', 'start-dev', '--headless', '--ip', '0.0.0.0', '--port', String(TEMPORAL_PORT), '--namespace', 'default', '--log-level', 'error', ...devServerSearchAttributeArgs()], env: {} }, hosts.exec('temporal'));
    procs.push(temporal);
    await waitTcp(temporalIp, TEMPORAL_PORT, 60_000, 'the Temporal dev server in its namespace');
    const temporalAddress = `${temporalIp}:${TEMPORAL_PORT}`;
    // Accepting connections comes before the namespace is served: wait for that too.
    connection = await Connection.connect({ address: temporalAddress });
    for (const deadline = Date.now() + 60_000; ; ) {
      const ok = await connection.workflowService.describeNamespace({ namespace: 'default' }).then(() => true, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('the dev server did not serve namespace default within 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }

    const envFile = (who: string) => `FEDFLOW_HOME=${homeOf(who)}\nFEDFLOW_CONFIG=${configPath(who)}\nTEMPORAL_ADDRESS=${temporalAddress}\nFEDFLOW_TRANSFER_SECRET=${SECRET}\n`;
    const agentUnit = readUnit(join(REPO_ROOT, 'deploy', 'fedflow-agent.service'));
    const agents: Record<string, WorkerProcess> = {};
    for (const s of SITES) {
      agents[s] = startCommand(`agent ${s}`, unitCommand(agentUnit, `FEDFLOW_SITE=${s}\n${envFile(s)}`), hosts.exec(s));
      procs.push(agents[s]);
    }
    const control = startCommand('control', unitCommand(readUnit(join(REPO_ROOT, 'deploy', 'fedflow-control.service')), envFile('control')));
    procs.push(control);
    await Promise.all([...Object.values(agents), control].map((p) => p.ready));
    for (const s of SITES) assert.match(agents[s]!.output(), new RegExp(`endpoint https://${hosts.hosts[s]!.ip.replace(/\./g, '\\.')}:${AGENT_PORT} \\(listening on https://0\\.0\\.0\\.0:${AGENT_PORT}\\), mutual TLS 1\\.3`));

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
    const rogue = join(root, 'rogue-ca');
    execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs', '--out', rogue, '--site', 'dc:frankfurt'], { env: { ...process.env, FEDFLOW_CONFIG: configPath('control') }, stdio: 'pipe' });
    await assert.rejects(httpsGet(`${parisUrl}/health`, { ca: caPem, cert: readFileSync(siteCertPath(rogue, 'dc:frankfurt')), key: readFileSync(siteKeyPath(rogue, 'dc:frankfurt')) }), 'a certificate from another CA: refused');
    const wrongPeer = await httpsGet(`${parisUrl}/probe?bytes=0`, { ca: caPem, cert: readFileSync(siteCertPath(certs, 'dc:frankfurt')), key: readFileSync(siteKeyPath(certs, 'dc:frankfurt')) }, endpointToken(Buffer.from(SECRET, 'hex'), 'probe', 'dc:paris', 'dc:london'));
    assert.equal(wrongPeer.status, 403, wrongPeer.body);
    assert.match(wrongPeer.body, /token is for target site 'dc:london', but the peer's certificate is site 'dc:frankfurt'/);

    // The sample workload is deployed on its host (its instance runs in dc:paris's namespace) and filled.
    const add = spawnSync(hosts.exec('dc:paris')[0]!, [...hosts.exec('dc:paris').slice(1), process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test', 'hosts', 'deploy-sample-on-host.ts')], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FEDFLOW_HOME: homeOf('dc:paris'), FEDFLOW_CONFIG: configPath('dc:paris'), TEMPORAL_ADDRESS: temporalAddress, SAMPLE_SITE: 'dc:paris', SAMPLE_KEYS: String(KEYS) },
      // Files, not pipes: the workload instance it starts outlives it and would hold a pipe open.
      stdio: ['ignore', openSync(join(root, 'add.out'), 'w'), openSync(join(root, 'add.err'), 'w')],
      timeout: 120_000,
    });
    const addOut = readFileSync(join(root, 'add.out'), 'utf8');
    assert.equal(add.status, 0, `deploying the sample on dc:paris's host (${add.signal ?? add.status}): ${addOut}\n${readFileSync(join(root, 'add.err'), 'utf8')}`);
    const added = JSON.parse(addOut) as { workloadId: string; site: string; address: string; keys: number };
    assert.equal(added.site, 'dc:paris');
    assert.equal(added.keys, KEYS);

    // The link out of dc:paris is a 200 Mbit/s one.
    hosts.shape('dc:paris', 200);

    const c = FedflowClient.fromClient(new Client({ connection, namespace: 'default' }));
    await c.startMigration({ workloadId: added.workloadId, targetSite: 'dc:frankfurt' });
    // The target's agent dies with kill -9 once the migration runs, and comes back as systemd's
    // Restart=always brings it back: the same command line, a second later. The migration completes.
    for (const deadline = Date.now() + 60_000; (await c.getProgress(added.workloadId)).steps[0]?.status !== 'done'; ) {
      if (Date.now() > deadline) throw new Error('the migration was not validated within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await killHard(agents['dc:frankfurt']!);
    await new Promise((r) => setTimeout(r, 1000));
    const restarted = startCommand('agent dc:frankfurt (restarted)', unitCommand(agentUnit, `FEDFLOW_SITE=dc:frankfurt\n${envFile('dc:frankfurt')}`), hosts.exec('dc:frankfurt'));
    procs.push(restarted);
    await restarted.ready;
    const r = await c.waitForResult(added.workloadId);
    assert.equal(r.status, 'completed', JSON.stringify(r).slice(0, 800));
    assert.equal(r.source, 'dc:paris');
    assert.equal(r.target, 'dc:frankfurt');
    assert.equal(r.keys, KEYS, 'every key verified on the target host');
    // 400 KiB of sample values, LZ4-compressed on the wire in datacenter mode: well over 100 kB crosses.
    assert.ok(r.bytesTransferred > 100_000, `the volume crossed the bridge (${r.bytesTransferred} bytes)`);
    // The target host holds the volume in its own home; the source's home is another directory.
    assert.ok(existsSync(join(siteDir('dc:frankfurt', homeOf('dc:frankfurt')), 'chunks')), "the chunks are in dc:frankfurt's home");
    console.log(`hosts: migrated ${added.workloadId} dc:paris -> dc:frankfurt across namespaces in ${r.durationMs} ms, downtime ${r.downtimeMs} ms, ${r.bytesTransferred} bytes on the wire (${r.decision.reason})`);
  });
});
