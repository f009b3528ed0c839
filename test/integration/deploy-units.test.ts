/**
 * The service files in deploy/ start what they say (issue 15): each command line is taken from
 * the file as written and run as a process, with only `/opt/fedflow` (the install directory) standing
 * for this checkout, and the environment files standing for /etc/fedflow/*.env:
 *
 *   dc:paris      deploy/fedflow-agent.service    ExecStart=/opt/fedflow/bin/fedflow agent --site ${FEDFLOW_SITE}
 *   dc:frankfurt  deploy/Containerfile            ENTRYPOINT + CMD, with its ENV and FEDFLOW_SITE as `-e`
 *   control       deploy/fedflow-control.service  ExecStart=/opt/fedflow/bin/fedflow worker --control
 *
 * Each site's agent listens where the config's `listen` says and is reached at its `agentUrl`,
 * on mutual TLS with certificates `fedflow certs` made. A migration from one to the other then
 * completes with every key intact, and each endpoint refuses a client without a certificate.
 * (The container image itself is not built here: no container engine runs in this tier.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { loadSiteTls } from '../../agent/transfer/tls';
import { readAgentUrl } from '../../activities/site';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { agentGetJson } from '../helpers/agent-fetch';
import { useProcessFederation } from '../helpers/worker-process';
import { envLines, INSTALL_DIR, readUnit, startCommand as start, unitCommand } from '../helpers/units';

const KEYS = 300;

/** A free TCP port on loopback (closed again: the agent binds it). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The Containerfile's ENTRYPOINT + CMD (exec form) and its ENV, as `podman run -e ...` would run them. */
function containerCommand(path: string, runEnv: Record<string, string>): { argv: string[]; env: Record<string, string> } {
  const text = readFileSync(path, 'utf8');
  const json = (key: string) => JSON.parse(new RegExp(`^${key} (\\[.*\\])$`, 'm').exec(text)?.[1] ?? 'null') as string[] | null;
  const entrypoint = json('ENTRYPOINT');
  const cmd = json('CMD');
  assert.ok(entrypoint && cmd, `${path} has ENTRYPOINT and CMD in exec form`);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^ENV (.*)$/gm)) for (const kv of m[1]!.split(/\s+/)) env[kv.split('=')[0]!] = kv.slice(kv.indexOf('=') + 1);
  // COPY sources exist: a file the image needs is not left out by a rename.
  for (const m of text.matchAll(/^COPY (.*) \S+$/gm)) for (const src of m[1]!.split(/\s+/)) assert.ok(existsSync(join(REPO_ROOT, src)), `${path}: COPY ${src}: no such file in the repository`);
  // The image is the release artifact of this version (npm run release names it so).
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const arg = /^ARG FEDFLOW_VERSION=(\S+)$/m.exec(text)?.[1];
  if (/^ADD /m.test(text)) {
    assert.equal(arg, version, `${path}: ARG FEDFLOW_VERSION is package.json's version`);
    assert.match(text, /^ADD dist\/fedflow-\$\{FEDFLOW_VERSION\}-linux-x64\.tar\.gz \/opt\/$/m, `${path} adds the release artifact`);
  }
  const argv = [...entrypoint, ...cmd];
  assert.ok(argv[0]!.startsWith(`${INSTALL_DIR}/`), `ENTRYPOINT runs fedflow from ${INSTALL_DIR}`);
  return { argv: [argv[0]!.replace(INSTALL_DIR, REPO_ROOT), ...argv.slice(1)], env: { ...env, ...runEnv } };
}

/** GET /health with no client certificate: the handshake must refuse it. */
function healthWithoutCert(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/health`, { ca, checkServerIdentity: () => undefined, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('deploy/: the systemd units and the container file start what they say', () => {
  const SITES = ['dc:paris', 'dc:frankfurt'];
  // Rewritten with each site's listen address and agentUrl once the ports are known; the suite's
  // clean-up stops the workload instances of these sites.
  const suite = useProcessFederation({ federation: 'deploy', sites: SITES.map((id) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 2 } })) }, 'fedflow-deploy-');

  it('agents from the unit and the container, the control worker from its unit: a migration over mutual TLS', async () => {
    const { env, home } = suite;
    const ports: Record<string, number> = {};
    for (const s of SITES) ports[s] = await freePort();
    const raw = {
      federation: 'deploy',
      sites: SITES.map((id) => ({
        id,
        provider: 'local',
        trust: 'trusted',
        capacity: { instances: 2 },
        listen: { host: '127.0.0.1', port: ports[id] },
        agentUrl: `https://127.0.0.1:${ports[id]}`,
      })),
    };
    const config = parseFederationConfig(raw);
    const configPath = join(home, 'federation.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const common = `FEDFLOW_HOME=${home}\nFEDFLOW_CONFIG=${configPath}\nTEMPORAL_ADDRESS=${env.address}\nFEDFLOW_TRANSFER_SECRET=${'ab'.repeat(32)}\n`;

    // The certificates, by the command an operator runs (agents started by a unit make none).
    const made = execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs'], { env: { ...process.env, FEDFLOW_HOME: home, FEDFLOW_CONFIG: configPath }, encoding: 'utf8' });
    assert.match(made, /made CA .*\nmade dc:paris: .*\nmade dc:frankfurt: /);
    assert.doesNotMatch(made, /BEGIN|PRIVATE/, 'no key material printed');

    const agentUnit = readUnit(join(REPO_ROOT, 'deploy', 'fedflow-agent.service'));
    assert.equal(agentUnit.execStart, '/opt/fedflow/bin/fedflow agent --site ${FEDFLOW_SITE}');
    const paris = start('agent dc:paris (unit)', unitCommand(agentUnit, `FEDFLOW_SITE=dc:paris\n${common}`));
    suite.workers.push(paris);
    const frankfurt = start('agent dc:frankfurt (container)', containerCommand(join(REPO_ROOT, 'deploy', 'Containerfile'), { ...envLines(common), FEDFLOW_SITE: 'dc:frankfurt' }));
    suite.workers.push(frankfurt);
    const controlUnit = readUnit(join(REPO_ROOT, 'deploy', 'fedflow-control.service'));
    assert.equal(controlUnit.execStart, '/opt/fedflow/bin/fedflow worker --control');
    const control = start('control (unit)', unitCommand(controlUnit, common));
    suite.workers.push(control);
    await Promise.all([paris.ready, frankfurt.ready, control.ready]);

    assert.match(paris.output(), /\[agent dc:paris\] agent dc:paris: task queue fedflow-site-dc:paris, endpoint https:\/\/127\.0\.0\.1:\d+, mutual TLS 1\.3/);
    assert.match(frankfurt.output(), /\[agent dc:frankfurt\] agent dc:frankfurt: .*mutual TLS 1\.3/);
    assert.doesNotMatch(control.output(), /agent dc:/, 'the control worker runs no agent');
    for (const s of SITES) {
      assert.equal(readAgentUrl(siteDir(s, home)), `https://127.0.0.1:${ports[s]}`, `${s} advertises its agentUrl`);
      const ca = loadSiteTls(config, s, home).ca;
      await assert.rejects(healthWithoutCert(`https://127.0.0.1:${ports[s]}`, ca), `${s} refuses a client without a certificate`);
      const other = s === 'dc:paris' ? 'dc:frankfurt' : 'dc:paris';
      assert.deepEqual(await agentGetJson({ home, config, site: s, path: '/health', as: other }), { ok: true, site: s, peer: other });
    }

    await deploySampleWorkload({ client: env.client, config, home, keys: KEYS, valueBytes: 512 });
    const c = FedflowClient.fromClient(env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    const r = await c.waitForResult('kv-demo');
    assert.equal(r.status, 'completed', JSON.stringify(r).slice(0, 500));
    assert.equal(r.target, 'dc:frankfurt');
    assert.equal(r.keys, KEYS);
    assert.ok(r.bytesTransferred > 0, 'bytes crossed from agent to agent');

    // SIGTERM, as systemd stops a unit: each process drains and exits by itself.
    for (const w of [control, frankfurt, paris]) {
      const exited = new Promise<number | null>((res) => w.child.once('exit', (code) => res(code)));
      w.child.kill('SIGTERM');
      assert.equal(await exited, 0, `exits 0 on SIGTERM:\n${w.output().slice(-800)}`);
    }
  });
});
