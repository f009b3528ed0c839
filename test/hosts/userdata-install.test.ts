/**
 * The user-data a site's instance boots with (agent/site/cloud-init.ts, what infra puts in an
 * instance), run for real on a host of the hosts tier (issue 16's test, issue 15's artifact):
 *
 *   - the release artifact is built (`npm run release`'s code, scripts/release.ts) and served over
 *     HTTP from the test's address on the bridge;
 *   - dc:lyon is a network namespace on the bridge; inside it, in a private mount namespace whose
 *     /etc (a copy of the host's), /opt, /var/lib and /tmp are the test's own directories (the real
 *     host's are untouched), test/helpers/cloud-init-run.ts executes the user-data's write_files
 *     and runcmd as cloud-init would, with test/helpers/systemctl-shim.ts as `systemctl`. The
 *     runcmd fetches the artifact with curl, checks its sha256, and runs its install.sh: the
 *     fedflow user, /opt/fedflow, the units, `systemctl enable --now fedflow-agent.service`;
 *   - dc:paris's agent runs in another namespace (started by the unit's command line from this
 *     checkout, as in migrate-across-hosts), Temporal in a third, the control worker here.
 *
 * Checked: the release is installed where the unit runs it from, the agent runs as the fedflow
 * user from /opt/fedflow on the artifact's own Node, its key is 0600 and the fedflow user's; it
 * answers dc:paris over the bridge on mutual TLS with its site certificate and refuses a client with
 * none; and it takes part in the federation: a proposal on dc:lyon commits with dc:lyon's vote
 * (a two-site CFT quorum needs both). A user-data whose sha256 does not match installs nothing.
 * The installer run a second time replaces the release and restarts the agent on it, which votes again.
 * Everything (processes, namespaces, mounts, directories) is removed at the end, also after a failure.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, createReadStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { REPO_ROOT, siteDirName } from '../../agent/site/home';
import { agentCloudInit } from '../../agent/site/cloud-init';
import { caCertPath, siteCertPath, siteKeyPath } from '../../agent/transfer/certs';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { devServerSearchAttributeArgs } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { buildRelease } from '../../scripts/release';
import { agentGetJson } from '../helpers/agent-fetch';
import { createHosts, hostsUnavailable, type Hosts } from '../helpers/netns';
import { readUnit, startCommand, unitCommand } from '../helpers/units';
import { killHard, type WorkerProcess } from '../helpers/worker-process';

const SITES = ['dc:paris', 'dc:lyon'] as const;
const AGENT_PORT = 7443;
const TEMPORAL_PORT = 7233;
const SECRET = 'ef'.repeat(32);
const TOOLS = ['unshare', 'setpriv', 'curl', 'useradd', 'sha256sum', 'mount'];

function missingTools(): string | undefined {
  const missing = TOOLS.filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  return missing.length ? `running user-data on a host needs ${missing.join(', ')} (apt-get install util-linux curl passwd coreutils mount)` : undefined;
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const tcpOpen = (host: string, port: number) =>
  new Promise<true | undefined>((resolve) => {
    const s = connect({ host, port }, () => (s.end(), resolve(true)));
    s.on('error', () => resolve(undefined));
    s.setTimeout(1000, () => (s.destroy(), resolve(undefined)));
  });

/** Serves one file over HTTP on `host`, counting the GETs of it. */
function serveFile(host: string, file: string): Promise<{ server: Server; url: string; gets: () => number }> {
  let gets = 0;
  const server = createServer((req, res) => {
    if (req.url !== `/${basename(file)}`) return void res.writeHead(404).end();
    gets++;
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve({ server, url: `http://${host}:${(server.address() as { port: number }).port}/${basename(file)}`, gets: () => gets }));
  });
}

/**
 * The private directories of a host's mount namespace: /etc starts as a copy of the real one (so
 * useradd and the unit directory write to the copy), /opt, /var/lib and /tmp start empty.
 */
function hostRoot(dir: string): Record<'etc' | 'opt' | 'varlib' | 'tmp', string> {
  const r = { etc: join(dir, 'etc'), opt: join(dir, 'opt'), varlib: join(dir, 'var-lib'), tmp: join(dir, 'tmp') };
  cpSync('/etc', r.etc, { recursive: true, verbatimSymlinks: true, errorOnExist: false, filter: (src) => !src.startsWith('/etc/netns') });
  for (const d of [r.opt, r.varlib, r.tmp]) mkdirSync(d, { recursive: true });
  chmodSync(r.tmp, 0o1777);
  return r;
}

/** Runs the user-data on host `ns` in a private mount namespace over `root`'s directories, as cloud-init's first boot would. */
function runUserData(ns: string, root: ReturnType<typeof hostRoot>, userData: string, shimDir: string): Promise<{ code: number; output: string }> {
  return runOnHost(ns, root, shimDir, [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test', 'helpers', 'cloud-init-run.ts'), userData]);
}

/** Runs `command` on host `ns` in a private mount namespace over `root`'s directories, in cloud-final.service's environment. */
function runOnHost(ns: string, root: ReturnType<typeof hostRoot>, shimDir: string, command: string[]): Promise<{ code: number; output: string }> {
  const shimBin = join(shimDir, 'bin');
  mkdirSync(shimBin, { recursive: true });
  writeFileSync(join(shimBin, 'systemctl'), `#!/bin/sh\nexec ${process.execPath} --import ${join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')} ${join(REPO_ROOT, 'test', 'helpers', 'systemctl-shim.ts')} "$@"\n`, { mode: 0o755 });
  // The checkout and the Node that runs the runner and the shim may themselves live under one of the directories
  // replaced (a CI clone in /tmp): it is bound into the replacement at the same path first, and the
  // replacements are bound with what is mounted inside them (--rbind), so it stays where it was.
  const mounts = [
    'for keep in "$5" "$6"; do',
    '  for pair in "/etc:$1" "/opt:$2" "/var/lib:$3" "/tmp:$4"; do',
    '    m="${pair%%:*}"; h="${pair#*:}"',
    '    case "$keep/" in "$m"/*) rel="${keep#"$m"}"; mkdir -p "$h$rel" && mount --bind "$keep" "$h$rel" || exit 1;; esac',
    '  done',
    'done',
    'mount --rbind "$1" /etc && mount --rbind "$2" /opt && mount --rbind "$3" /var/lib && mount --rbind "$4" /tmp && shift 6 && exec "$@"',
  ].join('\n');
  const argv = ['ip', 'netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', mounts, 'mounts', root.etc, root.opt, root.varlib, root.tmp, REPO_ROOT, dirname(dirname(process.execPath)), ...command];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      // cloud-final.service's environment: systemd's default PATH (with the shim first), nothing of the test's.
      env: { PATH: `${shimBin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, FEDFLOW_SYSTEMCTL_SHIM_DIR: shimDir, HOME: '/root', LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), output });
    });
  });
}

function httpsGetNoCert(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.end();
  });
}

const unavailable = hostsUnavailable() ?? missingTools();

describe("a site instance's user-data, run on a host: it installs the release artifact and starts an agent that joins the federation", { skip: unavailable }, () => {
  let net: Hosts | undefined;
  let root: string;
  let http: Server | undefined;
  let connection: Connection | undefined;
  const procs: WorkerProcess[] = [];

  before(() => {
    // Not under /tmp: the host's /tmp is replaced inside its mount namespace, and these paths are passed in.
    root = mkdtempSync('/var/tmp/fedflow-userdata-');
    net = createHosts(['temporal', ...SITES]);
  });
  after(async () => {
    await connection?.close().catch(() => undefined);
    for (const p of procs) await killHard(p).catch(() => undefined);
    http?.close();
    // Kills what runs in the namespaces (the installed agent too); its mount namespace goes with it.
    net?.teardown();
    rmSync(root, { recursive: true, force: true });
  });

  it('installs the artifact from its URL, checks its sha256, and starts dc:lyon\'s agent by its unit: mutual TLS over the bridge, and a proposal commits with its vote', async () => {
    const hosts = net!;
    const homeOf = (who: string) => join(root, 'homes', who.replace(':', '_'));
    const configPath = (who: string) => join(homeOf(who), 'federation.json');
    const temporalAddress = `${hosts.hosts.temporal!.ip}:${TEMPORAL_PORT}`;

    // The artifact, as `npm run release` builds it (FEDFLOW_RELEASE_ARTIFACT: one built already, with its .sha256 beside it).
    const prebuilt = process.env.FEDFLOW_RELEASE_ARTIFACT;
    const artifact = prebuilt ? { path: prebuilt, sha256: readFileSync(`${prebuilt}.sha256`, 'utf8').split(/\s+/)[0]! } : await buildRelease(join(root, 'dist'));
    const served = await serveFile(hosts.gateway, artifact.path);
    http = served.server;

    const federation = (keys: Record<string, string>) => ({
      federation: 'userdata',
      sites: SITES.map((id) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 2 }, listen: { host: '0.0.0.0', port: AGENT_PORT }, agentUrl: `https://${hosts.hosts[id]!.ip}:${AGENT_PORT}`, ...(keys[id] ? { publicKey: keys[id] } : {}) })),
    });
    for (const who of ['dc:paris', 'control']) {
      mkdirSync(homeOf(who), { recursive: true });
      writeFileSync(configPath(who), JSON.stringify(federation({})));
    }
    // dc:paris's consensus key, made on its host.
    const keys: Record<string, string> = {};
    keys['dc:paris'] = execFileSync(hosts.exec('dc:paris')[0]!, [...hosts.exec('dc:paris').slice(1), join(REPO_ROOT, 'bin', 'fedflow'), 'site-key', '--site', 'dc:paris'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FEDFLOW_HOME: homeOf('dc:paris'), FEDFLOW_CONFIG: configPath('dc:paris') }, encoding: 'utf8' }).trim();
    // The certificates, made where the CA lives; dc:paris gets its own, dc:lyon gets its own through the user-data.
    const certs = join(root, 'ca-host');
    execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs', '--out', certs], { env: { ...process.env, FEDFLOW_CONFIG: configPath('control') }, stdio: 'pipe' });
    for (const [from, to, mode] of [
      [caCertPath(certs), caCertPath(join(homeOf('dc:paris'), 'tls')), 0o644],
      [siteCertPath(certs, 'dc:paris'), siteCertPath(join(homeOf('dc:paris'), 'tls'), 'dc:paris'), 0o644],
      [siteKeyPath(certs, 'dc:paris'), siteKeyPath(join(homeOf('dc:paris'), 'tls'), 'dc:paris'), 0o600],
    ] as const) {
      mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
      copyFileSync(from, to);
      chmodSync(to, mode);
    }

    // Temporal on a host of its own.
    const cli = findTemporalCli({ log: () => undefined }).path;
    procs.push(startCommand('temporal', { argv: [cli, 'server', 'start-dev', '--headless', '--ip', '0.0.0.0', '--port', String(TEMPORAL_PORT), '--namespace', 'default', '--log-level', 'error', ...devServerSearchAttributeArgs()], env: {} }, hosts.exec('temporal')));

    const realHost = { passwd: readFileSync('/etc/passwd', 'utf8'), opt: existsSync('/opt/fedflow'), unit: existsSync('/etc/systemd/system/fedflow-agent.service') };
    // A user-data whose sha256 is not the artifact's: nothing is installed, nothing started.
    const lyon = hostRoot(join(root, 'lyon'));
    const userDataFor = (sha256: string) =>
      agentCloudInit({
        siteId: 'dc:lyon',
        workloadId: '',
        temporalAddress,
        release: { url: served.url, sha256 },
        federationConfig: JSON.stringify(federation(keys), null, 2),
        tls: { ca: readFileSync(caCertPath(certs), 'utf8'), cert: readFileSync(siteCertPath(certs, 'dc:lyon'), 'utf8'), key: readFileSync(siteKeyPath(certs, 'dc:lyon'), 'utf8') },
        transferSecret: SECRET,
      });
    writeFileSync(join(root, 'user-data.bad'), userDataFor('0'.repeat(64)));
    const bad = await runUserData(hosts.hosts['dc:lyon']!.ns, lyon, join(root, 'user-data.bad'), join(root, 'shim-bad'));
    assert.notEqual(bad.code, 0, `a wrong sha256 fails the runcmd:\n${bad.output}`);
    assert.match(bad.output, /does not have sha256 0{64}; not installed/);
    assert.ok(!existsSync(join(lyon.opt, 'fedflow')), 'nothing installed in /opt/fedflow');
    assert.ok(!existsSync(join(root, 'shim-bad', 'fedflow-agent.service.pid')), 'no agent started');
    assert.equal(served.gets(), 1);

    // The real user-data.
    const userData = userDataFor(artifact.sha256);
    writeFileSync(join(root, 'user-data'), userData);
    const shimDir = join(root, 'shim');
    const run = await runUserData(hosts.hosts['dc:lyon']!.ns, lyon, join(root, 'user-data'), shimDir);
    assert.equal(run.code, 0, `the user-data's runcmd:\n${run.output}`);
    assert.equal(served.gets(), 2, 'the artifact was fetched from its URL');
    assert.match(run.output, /fedflow-agent\.service enabled and started/);

    // Installed where the unit runs it from; the units in place and the agent's wanted by multi-user.target.
    const release = JSON.parse(readFileSync(join(lyon.opt, 'fedflow', 'RELEASE.json'), 'utf8')) as { version: string; node: string };
    assert.equal(release.node, process.version, 'the artifact carries the Node it was built with');
    assert.equal(readFileSync(join(lyon.etc, 'systemd', 'system', 'fedflow-agent.service'), 'utf8'), readFileSync(join(REPO_ROOT, 'deploy', 'fedflow-agent.service'), 'utf8'));
    assert.equal(readlinkSync(join(lyon.etc, 'systemd', 'system', 'multi-user.target.wants', 'fedflow-agent.service')), '/etc/systemd/system/fedflow-agent.service');
    const fedflowUser = readFileSync(join(lyon.etc, 'passwd'), 'utf8').split('\n').find((l) => l.startsWith('fedflow:'));
    assert.ok(fedflowUser, 'install.sh made the fedflow user (in the host copy of /etc, not the real one)');
    assert.equal(readFileSync('/etc/passwd', 'utf8'), realHost.passwd, "the real host's /etc/passwd is untouched");
    assert.equal(existsSync('/opt/fedflow'), realHost.opt, "the real host's /opt/fedflow is untouched");
    assert.equal(existsSync('/etc/systemd/system/fedflow-agent.service'), realHost.unit, "the real host's unit directory is untouched");
    const uid = Number(fedflowUser.split(':')[2]);
    const key = join(lyon.varlib, 'fedflow', 'tls', 'sites', siteDirName('dc:lyon'), 'key.pem');
    assert.equal(statSync(key).mode & 0o777, 0o600, "dc:lyon's key is 0600");
    assert.equal(statSync(key).uid, uid, "dc:lyon's key belongs to the fedflow user");
    assert.equal(statSync(join(lyon.etc, 'fedflow', 'agent.env')).mode & 0o777, 0o600, 'agent.env (the transfer secret) is 0600');
    assert.ok(!lstatSync(join(lyon.opt, 'fedflow', 'bin', 'fedflow')).isSymbolicLink());

    // The agent, started by the shim from the unit: ready, as the fedflow user, on the artifact's Node.
    const journal = join(shimDir, 'fedflow-agent.service.log');
    const pid = Number(readFileSync(join(shimDir, 'fedflow-agent.service.pid'), 'utf8'));
    await waitFor("dc:lyon's agent logs `; ready`", 180_000, () => {
      const log = existsSync(journal) ? readFileSync(journal, 'utf8') : '';
      if (/; ready/.test(log)) return true;
      if (!existsSync(`/proc/${pid}`)) throw new Error(`dc:lyon's agent (pid ${pid}) exited:\n${log}`);
      return undefined;
    });
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s`, 'm'), 'the agent runs as the fedflow user');
    assert.equal(readlinkSync(`/proc/${pid}/exe`), '/opt/fedflow/runtime/bin/node', "the agent runs on the artifact's Node, from /opt/fedflow");
    assert.match(readFileSync(journal, 'utf8'), new RegExp(`endpoint https://${hosts.hosts['dc:lyon']!.ip.replace(/\./g, '\\.')}:${AGENT_PORT} \\(listening on https://0\\.0\\.0\\.0:${AGENT_PORT}\\), mutual TLS 1\\.3`));

    // dc:lyon published its consensus key on its host; the other sites' configs now carry it.
    keys['dc:lyon'] = readFileSync(join(lyon.varlib, 'fedflow', 'sites', siteDirName('dc:lyon'), 'site-key.pub'), 'utf8').trim();
    const raw = federation(keys);
    const config = parseFederationConfig(raw);
    for (const who of ['dc:paris', 'control']) writeFileSync(configPath(who), JSON.stringify(raw));

    // Over the bridge: dc:lyon answers dc:paris's certificate, and refuses a client with none.
    await waitFor('dc:lyon\'s endpoint on the bridge', 30_000, () => tcpOpen(hosts.hosts['dc:lyon']!.ip, AGENT_PORT));
    const health = await agentGetJson<{ ok: boolean; site: string; peer: string }>({ home: homeOf('dc:paris'), config, site: 'dc:lyon', path: '/health', as: 'dc:paris', url: config.sites.find((s) => s.id === 'dc:lyon')!.agentUrl! });
    assert.deepEqual(health, { ok: true, site: 'dc:lyon', peer: 'dc:paris' });
    await assert.rejects(httpsGetNoCert(`${config.sites.find((s) => s.id === 'dc:lyon')!.agentUrl!}/health`, readFileSync(caCertPath(certs))), 'no client certificate: refused');

    // The rest of the federation: dc:paris's agent on its host, the control worker here.
    await waitFor('the Temporal dev server in its namespace', 60_000, () => tcpOpen(hosts.hosts.temporal!.ip, TEMPORAL_PORT));
    connection = await Connection.connect({ address: temporalAddress });
    await waitFor('namespace default served', 60_000, () => connection!.workflowService.describeNamespace({ namespace: 'default' }).then(() => true, () => undefined));
    const envFile = (who: string) => `FEDFLOW_HOME=${homeOf(who)}\nFEDFLOW_CONFIG=${configPath(who)}\nTEMPORAL_ADDRESS=${temporalAddress}\nFEDFLOW_TRANSFER_SECRET=${SECRET}\n`;
    const paris = startCommand('agent dc:paris', unitCommand(readUnit(join(REPO_ROOT, 'deploy', 'fedflow-agent.service')), `FEDFLOW_SITE=dc:paris\n${envFile('dc:paris')}`), hosts.exec('dc:paris'));
    procs.push(paris);
    const control = startCommand('control', unitCommand(readUnit(join(REPO_ROOT, 'deploy', 'fedflow-control.service')), envFile('control')));
    procs.push(control);
    await Promise.all([paris.ready, control.ready]);

    // A two-site CFT quorum needs both votes: the reservation on dc:lyon commits only with dc:lyon's.
    const log = FedflowClient.fromClient(new Client({ connection, namespace: 'default' })).federation('userdata');
    const view = await waitFor('the federation workflow', 60_000, () => log.view().catch(() => undefined));
    assert.deepEqual(view.membership.members.map((m) => m.id).sort(), ['dc:lyon', 'dc:paris']);
    assert.equal(view.membership.members.find((m) => m.id === 'dc:lyon')!.publicKey, keys['dc:lyon']);
    const reserved = await log.propose([{ kind: 'reservation', op: 'reserve', workload: 'userdata-probe', site: 'dc:lyon', instances: 1 }]);
    assert.equal(reserved.summary.protocol, 'cft');
    assert.deepEqual(reserved.summary.protocol === 'cft' ? [...reserved.summary.ackedBy].sort() : [], ['dc:lyon', 'dc:paris'], 'dc:lyon acknowledged the entry');
    assert.equal((await log.view()).committed.reservations['userdata-probe@dc:lyon']?.instances, 1);
    const released = await log.propose([{ kind: 'reservation', op: 'release', workload: 'userdata-probe', site: 'dc:lyon' }]);
    assert.ok(released.summary.protocol === 'cft' && released.summary.ackedBy.includes('dc:lyon'));

    // The installer run again (an upgrade, or a second run by hand): the release is replaced whole,
    // the running agent restarted on it (not left on the old files), and the old release removed after.
    const again = await runOnHost(hosts.hosts['dc:lyon']!.ns, lyon, shimDir, ['/bin/sh', '/etc/fedflow/install-release.sh']);
    assert.equal(again.code, 0, `install-release.sh run a second time:\n${again.output}`);
    assert.equal(served.gets(), 3, 'the artifact was fetched again');
    assert.match(again.output, /fedflow-agent\.service enabled and restarted/);
    assert.ok(!existsSync(join(lyon.opt, 'fedflow.old')) && !existsSync(join(lyon.opt, 'fedflow.new')), 'no old or staged release left in /opt');
    const pid2 = Number(readFileSync(join(shimDir, 'fedflow-agent.service.pid'), 'utf8'));
    assert.notEqual(pid2, pid, 'a new agent process');
    const gone = (p: number) => !existsSync(`/proc/${p}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'));
    assert.ok(gone(pid), 'the old agent was stopped');
    await waitFor("dc:lyon's restarted agent logs `; ready`", 180_000, () => {
      const log = readFileSync(journal, 'utf8');
      if ((log.match(/; ready/g) ?? []).length >= 2) return true;
      if (!existsSync(`/proc/${pid2}`)) throw new Error(`dc:lyon's restarted agent (pid ${pid2}) exited:\n${log}`);
      return undefined;
    });
    assert.equal(readlinkSync(`/proc/${pid2}/exe`), '/opt/fedflow/runtime/bin/node');
    await waitFor("dc:lyon's endpoint after the restart", 30_000, () => tcpOpen(hosts.hosts['dc:lyon']!.ip, AGENT_PORT));
    const reserved2 = await log.propose([{ kind: 'reservation', op: 'reserve', workload: 'userdata-probe-2', site: 'dc:lyon', instances: 1 }]);
    assert.ok(reserved2.summary.protocol === 'cft' && reserved2.summary.ackedBy.includes('dc:lyon'), 'the restarted agent votes');
    console.log(`userdata: ${basename(artifact.path)} (${(statSync(artifact.path).size / 1024 ** 2).toFixed(1)} MiB) installed on dc:lyon by its user-data, then again over itself; its agent joined federation 'userdata' (round ${released.round}) and voted again after the restart (round ${reserved2.round})`);
  });
});
