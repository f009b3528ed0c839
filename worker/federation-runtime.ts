/**
 * Runs the control worker and one agent per local site in this process:
 *   - control worker on task queue `fedflow`: the workflows and the federation-level activities;
 *   - per site: a worker on `fedflow-site-<siteId>` with that site's activities, and the site's
 *     agent endpoint (snapshot/chunk server): on loopback, or where the site's `listen` says, with
 *     mutual TLS unless the federation's tls.mode is 'plain'.
 * At scale the same pieces run apart: one agent per site inside its cloud, control workers anywhere.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LocalProvider } from '../adapters/local/provider';
import { createCloudProvider } from '../adapters/registry-cloud';
import { createControlActivities } from '../activities/control';
import { createSiteActivities } from '../activities/site';
import { SiteWorkloads } from '../activities/site-workloads';
import { createWorkloadActivities } from '../activities/workload';
import { fedflowHome, REPO_ROOT, siteDir } from '../agent/site/home';
import { WorkloadRunner } from '../agent/workload/runner';
import { spawner } from '../agent/workload/spawner';
import { shapersFromConfig } from '../agent/link/shapes';
import { ChunkStore } from '../agent/store/chunk-store';
import { SourceImages } from '../agent/capture/source-images';
import { recoverVolumes } from '../agent/capture/volume-journal';
import { loadTransferSecret } from '../agent/transfer/secret';
import { startTransferServer } from '../agent/transfer/server';
import { openServedLog } from '../agent/transfer/served-log';
import { ensureLocalCerts } from '../agent/transfer/certs';
import { loadSiteTls, type SiteTls } from '../agent/transfer/tls';
import { createSyncActivities } from '../activities/sync';
import { diskPullLedger } from '../agent/transfer/pull-ledger';
import { createLinkActivities } from '../activities/link';
import { LinkTelemetry } from '../agent/link/telemetry';
import { createConsensusActivities } from '../activities/consensus';
import { configPublicKeys } from '../activities/consensus-keys';
import { advertisedAgentUrl, type FederationConfig } from '../core/federation-config';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../core/contracts/task-queues';
import { resolveConnection } from '../client/connection';
import { ensureFederationWorkflow } from './federation-workflow';
import { workloadFronts, type WorkloadFrontsOptions } from './fronts';
import type { FrontSet } from '../agent/front/front-set';
import { applyAgentGcPolicy } from './gc-policy';

export interface FederationRuntimeOptions {
  config: FederationConfig;
  home?: string;
  /** Defaults to the envconfig connection. */
  connection?: NativeConnection;
  client?: Client;
  namespace?: string;
  /** Only run these sites' agents (default: every local site). */
  sites?: string[];
  /** Run the control worker (default true). */
  control?: boolean;
  /**
   * With the control worker, start the federation's entity workflow now (default true). Tests
   * that drive the federation workflow themselves turn it off; a migration still starts it on demand.
   */
  federationWorkflow?: boolean;
  /** A pre-built bundle saves a few seconds per start in tests. */
  workflowBundle?: WorkflowBundleWithSourceMap;
  /**
   * Run a front (a stable TCP address, agent/front/) for every workload the federation log
   * places, following its placement, with the cut-over's fast path wired into this process's
   * activities (default off; `fedflow up`'s worker turns it on). `true` or the poll settings.
   */
  fronts?: boolean | Pick<WorkloadFrontsOptions, 'intervalMs' | 'leaseMs' | 'front' | 'host'>;
  /**
   * With mutual TLS, make the CA and the sites' keys and certificates in `<home>/tls` when
   * missing (default true: the local federation of `fedflow up`, `npm start` and the tests). An
   * agent on a host of its own (`fedflow agent`) is given its material and makes none.
   */
  makeCerts?: boolean;
  log?: (line: string) => void;
}

export interface RunningFederation {
  /** Per site: its provider, its advertised endpoint URL, its worker, and its TLS material (with mutual TLS). */
  agents: Map<string, { provider: LocalProvider; url: string; worker: Worker; tls?: SiteTls }>;
  controlWorker?: Worker;
  /** The workload fronts, when `fronts` is on. */
  fronts?: FrontSet;
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

function previousPort(dir: string): number | undefined {
  const p = join(dir, 'agent.json');
  if (!existsSync(p)) return undefined;
  try {
    const was = JSON.parse(readFileSync(p, 'utf8')) as { url: string; listen?: string };
    return Number(new URL(was.listen ?? was.url).port) || undefined;
  } catch {
    return undefined;
  }
}

export async function startFederation(opts: FederationRuntimeOptions): Promise<RunningFederation> {
  // Before the first Buffer of a volume: an agent's GC counts them with the heap (./gc-policy.ts).
  applyAgentGcPolicy();
  const home = opts.home ?? fedflowHome();
  const log = opts.log ?? (() => undefined);
  // TLS material first, before Temporal or any socket: a missing file, a key others can read, a
  // certificate of another site or CA stops this process with what to fix (agent/transfer/tls.ts).
  const mine = opts.config.sites.filter((s) => !opts.sites || opts.sites.includes(s.id));
  // Only agents hold TLS material: a control worker alone makes and reads none.
  if (opts.makeCerts !== false && mine.length) for (const line of ensureLocalCerts(home, opts.config, mine.map((s) => s.id))) log(line);
  const tlsOf = new Map<string, SiteTls>();
  if (opts.config.tls.mode === 'mutual-tls') for (const s of mine) tlsOf.set(s.id, loadSiteTls(opts.config, s.id, home));
  let ownConnection: NativeConnection | undefined;
  let connection = opts.connection;
  let namespace = opts.namespace;
  if (!connection) {
    const resolved = resolveConnection();
    ownConnection = connection = await NativeConnection.connect(resolved.connectionOptions);
    namespace ??= resolved.namespace;
  }
  namespace ??= 'default';
  let client = opts.client;
  let clientConnection: Connection | undefined;
  if (!client) {
    const resolved = resolveConnection();
    clientConnection = await Connection.connect(resolved.connectionOptions);
    client = new Client({ connection: clientConnection, namespace });
  }

  const agents: RunningFederation['agents'] = new Map();
  const closers: (() => Promise<void>)[] = [];
  // Made before the activities, which call its fast path; it reads the log once the workers run.
  const fronts = opts.fronts
    ? workloadFronts({ ...(opts.fronts === true ? {} : opts.fronts), client, home, federation: () => Promise.resolve(opts.config.federation), log })
    : undefined;
  const front = fronts;
  const wanted = opts.sites ? new Set(opts.sites) : undefined;
  const shapers = shapersFromConfig(opts.config.links);
  const secret = loadTransferSecret(home);
  const storeMaxBytes = Number(process.env.FEDFLOW_CHUNK_STORE_MAX_BYTES ?? 8 * 1024 ** 3);
  // Every chunk the endpoints serve, as JSON lines, when asked for (agent/transfer/served-log.ts).
  const servedLog = process.env.FEDFLOW_SERVED_LOG ? openServedLog(process.env.FEDFLOW_SERVED_LOG) : undefined;
  for (const site of opts.config.sites) {
    if (wanted && !wanted.has(site.id)) continue;
    const tls = tlsOf.get(site.id);
    // A cloud site's agent runs here and stands for the site: volumes and the workload process are
    // local, while the real instance is created and removed through the cloud's adapter.
    const cloud = site.provider === 'local' ? undefined : await createCloudProvider(site);
    const dir = siteDir(site.id, home);
    mkdirSync(dir, { recursive: true });
    const provider = new LocalProvider({ site: site.id, dir, capacityInstances: site.capacity.instances });
    // Before anything uses a volume: a patch a crash interrupted is finished (it had committed) or
    // dropped (it had not), so every volume is one whole image (agent/capture/volume-journal.ts).
    for (const r of await recoverVolumes(dirname(provider.volumePath('any')))) log(`agent ${site.id}: ${r.volume}: interrupted in-place patch ${r.outcome}${r.detail ? ` (${r.detail})` : ''}`);
    const runner = new WorkloadRunner({ site: site.id, siteDir: dir, fedflowRoot: REPO_ROOT });
    // The runner's commands and starts go through the spawn helper, not a fork of this process: up
    // before the first of them (agent/workload/spawner.ts).
    spawner.warm();
    const workloads = new SiteWorkloads(site.id, provider, runner);
    const images = new SourceImages(join(dir, 'images'));
    const telemetry = new LinkTelemetry(join(dir, 'telemetry'));
    let store: Promise<ChunkStore> | undefined;
    const openStore = () => (store ??= ChunkStore.open(join(dir, 'chunks'), { maxBytes: storeMaxBytes }));
    const serverOpts = { site: site.id, images, secret, shapers, ...(tls ? { tls } : {}), fronts: fronts && (() => fronts.stats()), ...(servedLog ? { onServed: servedLog.onServed } : {}) };
    let endpoint;
    if (site.listen) {
      // A configured address: other sites reach it at its agentUrl, so it must be this one.
      endpoint = await startTransferServer({ ...serverOpts, host: site.listen.host, port: site.listen.port });
    } else {
      // Reuse the last port when free, so endpoint URLs handed out before a restart stay valid.
      try {
        endpoint = await startTransferServer({ ...serverOpts, port: previousPort(dir) });
      } catch {
        endpoint = await startTransferServer(serverOpts);
      }
    }
    // What other sites are told (the capture's result carries it to the target): the configured
    // agentUrl, else the listening address (one machine).
    const url = advertisedAgentUrl(site) ?? endpoint.url;
    writeFileSync(join(dir, 'agent.json'), JSON.stringify({ site: site.id, url, listen: endpoint.url, pid: process.pid }));
    closers.push(endpoint.close, () => images.close());
    const worker = await Worker.create({
      connection,
      namespace,
      taskQueue: siteTaskQueue(site.id),
      // The cut-over's capture has a 10 s heartbeat timeout (so a crash is retried within
      // seconds); the SDK would otherwise send its heartbeats only every 8 s (0.8 of it).
      maxHeartbeatThrottleInterval: '2 seconds',
      activities: {
        ...createSiteActivities({ site: site.id, provider, workloads, cloud, temporalAddress: process.env.TEMPORAL_ADDRESS, endpointUrl: () => url, front, images }),
        ...createSyncActivities({ site: site.id, provider, workloads, images, store: openStore, secret, ...(tls ? { tls } : {}), telemetry, endpointUrl: () => url, front, ledger: diskPullLedger(join(dir, 'pulls')) }),
        ...createLinkActivities({ site: site.id, telemetry, secret, ...(tls ? { tls } : {}) }),
        ...createConsensusActivities({ site: site.id, dir, keys: configPublicKeys(opts.config, home) }),
        ...createWorkloadActivities({ site: site.id, runner, front }),
      },
    });
    agents.set(site.id, { provider, url, worker, ...(tls ? { tls } : {}) });
    log(`agent ${site.id}: task queue ${siteTaskQueue(site.id)}, endpoint ${url}${url !== endpoint.url ? ` (listening on ${endpoint.url})` : ''}${tls ? ', mutual TLS 1.3' : ', plain HTTP'}`);
  }
  // After the endpoints that write it.
  if (servedLog) closers.push(() => servedLog.close());

  let controlWorker: Worker | undefined;
  if (opts.control !== false) {
    controlWorker = await Worker.create({
      connection,
      namespace,
      taskQueue: CONTROL_TASK_QUEUE,
      maxHeartbeatThrottleInterval: '2 seconds',
      ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
      activities: createControlActivities({ config: opts.config, client, ensureFederation: () => ensureFederationWorkflow({ client, config: opts.config, home }), front }),
    });
    log(`control worker: task queue ${CONTROL_TASK_QUEUE}`);
    // The federation's entity workflow: migrations commit their reservation and placement through it.
    // When a founding site has no public key yet, a migration's validation tries again and says why.
    if (opts.federationWorkflow !== false) {
      try {
        const name = await ensureFederationWorkflow({ client, config: opts.config, home });
        log(`federation workflow: federation-${name}`);
      } catch (err) {
        const cause = (err as Error).cause instanceof Error ? `: ${((err as Error).cause as Error).message}` : '';
        log(`federation workflow not started yet: ${(err as Error).message}${cause}`);
      }
    }
  }

  const workers = [...[...agents.values()].map((a) => a.worker), ...(controlWorker ? [controlWorker] : [])];
  const done = Promise.all(workers.map((w) => w.run())).then(async () => {
    await fronts?.close();
    for (const close of closers) await close();
    await clientConnection?.close();
    await ownConnection?.close();
  });
  // Not awaited: the first read is a query the control worker answers once it polls. Each read
  // opens a front per newly placed workload (and logs its address); a failed read is tried again.
  if (fronts) void fronts.start();
  return {
    agents,
    controlWorker,
    fronts,
    done,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
