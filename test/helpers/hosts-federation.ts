/**
 * A federation spread over hosts, for the hosts tier and `npm run bench -- hosts`: Linux network
 * namespaces on a bridge (./netns.ts), the Temporal dev server in a namespace of its own, each
 * site's agent started by the command line of deploy/fedflow-agent.service in its host's namespace,
 * the control worker by deploy/fedflow-control.service in the caller's namespace (the operator's
 * host). Each site's consensus key is made on its host (`fedflow site-key`); the certificates by
 * `fedflow certs` where the CA lives, and each host gets the CA's certificate and only its own key.
 *
 * Two layouts of the same machinery:
 * - `hosts`: every site a namespace of its own with its own address; agents listen on
 *   0.0.0.0:7443 and reach each other over the bridge, where `shape()` puts a `tc tbf` on a
 *   site's egress;
 * - `loopback`: every site in one namespace, agents on 127.0.0.1:7443.. reaching each other over
 *   that namespace's loopback. Temporal and the control worker stay where they are in `hosts`, so
 *   only the agent-to-agent link differs.
 *
 * `tlsMode: 'plain'` turns mutual TLS off for the whole federation (no certificates are made).
 *
 * `delayMs` gives a site's link a one-way delay (`hosts` layout): `tc tbf` gives a rate, but this
 * kernel has no `netem`, so a delay proxy (./delay-proxy.ts) runs on the site's host in front of its
 * agent. The agent keeps listening on AGENT_PORT, the proxy listens on DELAY_PROXY_PORT, and the
 * site's agentUrl names the proxy's port, so every connection another site opens to it is delayed.
 *
 * Everything made (processes, namespaces, bridge, temporary homes) goes at `stop()`, and also on
 * the process's exit, SIGINT or SIGTERM, so a failure or a Ctrl-C leaves nothing behind.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { REPO_ROOT } from '../../agent/site/home';
import { caCertPath, siteCertPath, siteKeyPath } from '../../agent/transfer/certs';
import { FedflowClient } from '../../client';
import { parseFederationConfig, type FederationConfig, type TransportMode, type Trust } from '../../core/federation-config';
import { devServerSearchAttributeArgs } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { delayProxyCommand } from './delay-proxy';
import { createHosts, type Hosts } from './netns';
import { readUnit, startCommand, unitCommand, type Unit } from './units';
import { killHard, type WorkerProcess } from './worker-process';

export const AGENT_PORT = 7443;
export const TEMPORAL_PORT = 7233;
/** Where a site's delay proxy listens on its host (`delayMs`); its agentUrl names this port. */
export const DELAY_PROXY_PORT = 7444;

export const HOSTS_LAYOUTS = ['hosts', 'loopback'] as const;
export type HostsLayout = (typeof HOSTS_LAYOUTS)[number];

/** The namespace every site shares in the `loopback` layout. */
const SHARED_HOST = 'sites';

export interface HostsFederationOptions {
  sites: readonly string[];
  /** Per site; absent: trusted. */
  trust?: Readonly<Record<string, Trust>>;
  /** Instances per site (default 2). */
  capacity?: number;
  /** Default `mutual-tls`. */
  tlsMode?: TransportMode;
  /** Default `hosts`. */
  layout?: HostsLayout;
  /** The federation's name (default `hosts`). */
  federation?: string;
  /** FEDFLOW_TRANSFER_SECRET, hex (default a fixed test secret). */
  secret?: string;
  /** Progress (default: none). */
  log?: (msg: string) => void;
  /**
   * Per site: a one-way delay in ms on its link, each way (a round trip gets 2 × this), by a delay
   * proxy on its host in front of its agent. `hosts` layout only.
   */
  delayMs?: Readonly<Record<string, number>>;
  /**
   * Per site: more lines for its agent's EnvironmentFile (e.g. FEDFLOW_SERVED_LOG), given the
   * site's FEDFLOW_HOME (which is made by the set-up, so a path in it is not known before).
   */
  agentEnv?: Readonly<Record<string, (home: string) => Readonly<Record<string, string>>>>;
}

export interface DeploySampleOptions {
  site: string;
  keys: number;
  /** Bytes per value (default 1024). */
  valueBytes?: number;
  /** Default `kv-demo`. */
  workloadId?: string;
  /**
   * Key i holds sampleValue(firstValue + i): two workloads seeded with different offsets share no
   * chunk, so a second migration to the same target moves its whole volume again (default 0).
   */
  firstValue?: number;
}

export interface DeployedSampleOnHost {
  workloadId: string;
  site: string;
  address: string;
  keys: number;
}

export interface HostsFederation {
  readonly layout: HostsLayout;
  readonly net: Hosts;
  /** The temporary directory holding every home. */
  readonly root: string;
  readonly sites: readonly string[];
  /** The federation config as written to every home, and parsed. */
  readonly raw: Record<string, unknown>;
  readonly config: FederationConfig;
  readonly secret: string;
  /** Where the CA lives (`fedflow certs --out`); absent with tls.mode plain. */
  readonly certs: string | undefined;
  readonly temporalAddress: string;
  readonly connection: Connection;
  readonly client: FedflowClient;
  /** Each site's current agent (replaced by `startAgent`). */
  readonly agents: Record<string, WorkerProcess>;
  /** The delay proxy of each site with a `delayMs`. */
  readonly delayProxies: Readonly<Record<string, WorkerProcess>>;
  readonly control: WorkerProcess;
  readonly agentUnit: Unit;
  /** A site's (or `control`'s) FEDFLOW_HOME, and its federation config file. */
  homeOf(who: string): string;
  configPath(who: string): string;
  /** The name in `net.hosts` of the host a site runs on. */
  hostOf(site: string): string;
  /** The EnvironmentFile text of a site's agent (with its `agentEnv`) or of the control worker. */
  envFile(who: string): string;
  /** Starts a site's agent again by its unit's command line (as systemd restarts it); resolves once ready. */
  startAgent(site: string, label?: string): Promise<WorkerProcess>;
  /** Deploys the sample workload on a site's host (its instance runs in that host's namespace) and fills it. */
  deploySample(opts: DeploySampleOptions): Promise<DeployedSampleOnHost>;
  /** `tc tbf` on a site's egress (Mbit/s), or none (undefined). `hosts` layout only. */
  shape(site: string, rateMbps: number | undefined): void;
  stop(): Promise<void>;
}

/** Waits until something accepts TCP connections at host:port. */
export async function waitTcp(host: string, port: number, timeoutMs: number, what: string): Promise<void> {
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

// Every live federation's synchronous teardown, run on exit and on SIGINT/SIGTERM.
const live = new Set<() => void>();
let handlersInstalled = false;
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const t of [...live]) t();
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: removing the hosts federation (namespaces, processes, homes)\n`);
      process.exit(code); // runs the 'exit' handlers: the teardowns above and netns's own
    });
  }
}

const DEFAULT_SECRET = 'cd'.repeat(32);

export async function startHostsFederation(opts: HostsFederationOptions): Promise<HostsFederation> {
  const layout = opts.layout ?? 'hosts';
  if (!HOSTS_LAYOUTS.includes(layout)) throw new Error(`layout is '${String(layout)}'; expected one of ${HOSTS_LAYOUTS.join(', ')}`);
  if (!opts.sites.length) throw new Error('a hosts federation needs at least one site');
  const tlsMode = opts.tlsMode ?? 'mutual-tls';
  const secret = opts.secret ?? DEFAULT_SECRET;
  const log = opts.log ?? (() => undefined);
  const sites = [...opts.sites];
  const hostOf = (site: string) => {
    if (!sites.includes(site)) throw new Error(`site '${site}' is not in this hosts federation (known: ${sites.join(', ')})`);
    return layout === 'hosts' ? site : SHARED_HOST;
  };
  const delayMs = opts.delayMs ?? {};
  for (const [site, ms] of Object.entries(delayMs)) {
    hostOf(site);
    if (layout !== 'hosts') throw new Error(`delayMs for ${site}: the '${layout}' layout has no link per site; delay in the 'hosts' layout`);
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`delayMs for ${site} is ${ms}; expected a number of ms >= 0`);
  }
  for (const site of Object.keys(opts.agentEnv ?? {})) hostOf(site);

  const root = mkdtempSync(join(tmpdir(), 'fedflow-hosts-'));
  const procs: WorkerProcess[] = [];
  let net: Hosts | undefined;
  let connection: Connection | undefined;
  let stopped = false;
  // Synchronous, so it can run in an 'exit' handler: SIGKILL to every process started (those in
  // the namespaces also go with them), then the namespaces and bridge, then the homes.
  const teardownSync = () => {
    if (stopped) return;
    stopped = true;
    live.delete(teardownSync);
    for (const p of procs) {
      try {
        if (p.child.exitCode === null && !p.child.signalCode) p.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    net?.teardown();
    rmSync(root, { recursive: true, force: true });
  };
  installExitHandlers();
  live.add(teardownSync);

  try {
    net = createHosts(['temporal', ...(layout === 'hosts' ? sites : [SHARED_HOST])]);
    const hosts = net;
    const exec = (site: string) => hosts.exec(hostOf(site));
    const homeOf = (who: string) => join(root, who.replace(':', '_'));
    const configPath = (who: string) => join(homeOf(who), 'federation.json');
    const scheme = tlsMode === 'mutual-tls' ? 'https' : 'http';
    const endpointOf = (site: string) => {
      const i = sites.indexOf(site);
      return layout === 'hosts'
        ? { listen: { host: '0.0.0.0', port: AGENT_PORT }, agentUrl: `${scheme}://${hosts.hosts[site]!.ip}:${site in delayMs ? DELAY_PROXY_PORT : AGENT_PORT}` }
        : { listen: { host: '127.0.0.1', port: AGENT_PORT + i }, agentUrl: `${scheme}://127.0.0.1:${AGENT_PORT + i}` };
    };
    const siteEntry = (id: string) => ({ id, provider: 'local', trust: opts.trust?.[id] ?? 'trusted', capacity: { instances: opts.capacity ?? 2 } });
    const federation = opts.federation ?? 'hosts';
    const tlsSection = tlsMode === 'plain' ? { tls: { mode: 'plain' } } : {};

    // Each host's consensus key is made on it, by the command an operator runs there
    // (`fedflow site-key`); only the public keys go into the shared config.
    const publicKey: Record<string, string> = {};
    for (const s of sites) {
      mkdirSync(homeOf(s), { recursive: true });
      writeFileSync(configPath(s), JSON.stringify({ federation, sites: sites.map(siteEntry), ...tlsSection }));
      const [cmd, ...args] = exec(s);
      publicKey[s] = execFileSync(cmd!, [...args, join(REPO_ROOT, 'bin', 'fedflow'), 'site-key', '--site', s], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FEDFLOW_HOME: homeOf(s), FEDFLOW_CONFIG: configPath(s) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      if (!/^[A-Za-z0-9+/]+=*$/.test(publicKey[s]!)) throw new Error(`\`fedflow site-key --site ${s}\` printed '${publicKey[s]!.slice(0, 200)}', not a base64 public key`);
    }
    const raw: Record<string, unknown> = { federation, sites: sites.map((id) => ({ ...siteEntry(id), ...endpointOf(id), publicKey: publicKey[id] })), ...tlsSection };
    const config = parseFederationConfig(raw);
    for (const who of [...sites, 'control']) {
      mkdirSync(homeOf(who), { recursive: true });
      writeFileSync(configPath(who), JSON.stringify(raw));
    }

    // Certificates made where the CA lives; each site's home gets the CA's certificate and only its own key.
    let certs: string | undefined;
    if (tlsMode === 'mutual-tls') {
      certs = join(root, 'ca-host');
      execFileSync(join(REPO_ROOT, 'bin', 'fedflow'), ['certs', '--out', certs], { env: { ...process.env, FEDFLOW_CONFIG: configPath('control') }, stdio: 'pipe' });
      for (const s of sites) {
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
        if (existsSync(join(tls, 'ca.key'))) throw new Error(`the CA's key reached ${s}'s home (${tls}): only the CA's host may hold it`);
      }
    }

    // Temporal on a host of its own.
    log('starting the Temporal dev server in its namespace');
    const temporalIp = hosts.hosts.temporal!.ip;
    const cli = findTemporalCli({ log: () => undefined }).path;
    procs.push(startCommand('temporal', { argv: [cli, 'server', 'start-dev', '--headless', '--ip', '0.0.0.0', '--port', String(TEMPORAL_PORT), '--namespace', 'default', '--log-level', 'error', ...devServerSearchAttributeArgs()], env: {} }, hosts.exec('temporal')));
    await waitTcp(temporalIp, TEMPORAL_PORT, 60_000, 'the Temporal dev server in its namespace');
    const temporalAddress = `${temporalIp}:${TEMPORAL_PORT}`;
    // Accepting connections comes before the namespace is served: wait for that too.
    connection = await Connection.connect({ address: temporalAddress });
    for (const deadline = Date.now() + 60_000; ; ) {
      const ok = await connection.workflowService.describeNamespace({ namespace: 'default' }).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error('the dev server did not serve namespace default within 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }

    const extraEnv = (who: string) =>
      Object.entries(opts.agentEnv?.[who]?.(homeOf(who)) ?? {})
        .map(([k, v]) => `${k}=${v}\n`)
        .join('');
    const envFile = (who: string) => `FEDFLOW_HOME=${homeOf(who)}\nFEDFLOW_CONFIG=${configPath(who)}\nTEMPORAL_ADDRESS=${temporalAddress}\nFEDFLOW_TRANSFER_SECRET=${secret}\n${extraEnv(who)}`;
    const agentUnit = readUnit(join(REPO_ROOT, 'deploy', 'fedflow-agent.service'));
    const agents: Record<string, WorkerProcess> = {};
    const launchAgent = (site: string, label = `agent ${site}`) => {
      const p = startCommand(label, unitCommand(agentUnit, `FEDFLOW_SITE=${site}\n${envFile(site)}`), exec(site));
      procs.push(p);
      agents[site] = p;
      return p;
    };
    // A delayed site's proxy, on its host in front of its agent.
    const delayProxies: Record<string, WorkerProcess> = {};
    for (const [site, ms] of Object.entries(delayMs)) {
      const proxy = startCommand(`delay proxy on ${site}`, delayProxyCommand({ listen: { host: '0.0.0.0', port: DELAY_PROXY_PORT }, to: { host: '127.0.0.1', port: AGENT_PORT }, delayMs: ms }), exec(site));
      procs.push(proxy);
      delayProxies[site] = proxy;
    }
    log(`starting ${sites.length} agents (${layout}, ${tlsMode}) and the control worker`);
    for (const s of sites) launchAgent(s);
    const control = startCommand('control', unitCommand(readUnit(join(REPO_ROOT, 'deploy', 'fedflow-control.service')), envFile('control')));
    procs.push(control);
    await Promise.all([...Object.values(agents), control, ...Object.values(delayProxies)].map((p) => p.ready));

    const client = FedflowClient.fromClient(new Client({ connection, namespace: 'default' }));
    const conn = connection;
    let sampleRuns = 0;
    return {
      layout,
      net: hosts,
      root,
      sites,
      raw,
      config,
      secret,
      certs,
      temporalAddress,
      connection: conn,
      client,
      agents,
      delayProxies,
      control,
      agentUnit,
      homeOf,
      configPath,
      hostOf,
      envFile,
      async startAgent(site, label) {
        const p = launchAgent(site, label);
        await p.ready;
        return p;
      },
      async deploySample(d) {
        const n = ++sampleRuns;
        const out = join(root, `sample-${n}.out`);
        const err = join(root, `sample-${n}.err`);
        const [cmd, ...args] = exec(d.site);
        const child = spawn(cmd!, [...args, process.execPath, '--import', 'tsx', join(REPO_ROOT, 'test', 'helpers', 'sample-on-host.ts')], {
          cwd: REPO_ROOT,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            FEDFLOW_HOME: homeOf(d.site),
            FEDFLOW_CONFIG: configPath(d.site),
            TEMPORAL_ADDRESS: temporalAddress,
            SAMPLE_SITE: d.site,
            SAMPLE_KEYS: String(d.keys),
            SAMPLE_VALUE_BYTES: String(d.valueBytes ?? 1024),
            SAMPLE_FIRST_VALUE: String(d.firstValue ?? 0),
            ...(d.workloadId ? { SAMPLE_WORKLOAD_ID: d.workloadId } : {}),
          },
          // Files, not pipes: the workload instance it starts outlives it and would hold a pipe open.
          stdio: ['ignore', openSync(out, 'w'), openSync(err, 'w')],
        });
        const status = await new Promise<string | number>((resolve) => {
          const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
          child.once('exit', (code, sig) => (clearTimeout(timer), resolve(sig ?? code ?? -1)));
        });
        const text = readFileSync(out, 'utf8');
        if (status !== 0) throw new Error(`deploying the sample on ${d.site}'s host failed (${status}): ${text}\n${readFileSync(err, 'utf8').slice(-2000)}`);
        return JSON.parse(text) as DeployedSampleOnHost;
      },
      shape(site, rateMbps) {
        if (layout !== 'hosts') throw new Error(`shape(${site}): the '${layout}' layout has no link per site; shape in the 'hosts' layout`);
        hosts.shape(hostOf(site), rateMbps);
      },
      async stop() {
        if (stopped) return;
        await conn.close().catch(() => undefined);
        for (const p of procs) await killHard(p).catch(() => undefined);
        teardownSync();
        // The kernel frees a deleted namespace's veth a little later; the next set-up in this
        // process reuses the names (they carry the pid), so wait until they are gone.
        const prefix = `ffv${hosts.bridge.replace(/^ffbr/, '')}`;
        const leftover = () => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').filter((l) => l.split(': ')[1]?.startsWith(prefix));
        for (const deadline = Date.now() + 30_000; leftover().length && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
      },
    };
  } catch (err) {
    await connection?.close().catch(() => undefined);
    teardownSync();
    throw err;
  }
}
