/** A throwaway local federation for a test: its own home directory, config and agents. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseFederationConfig, type FederationConfig } from '../../core/federation-config';
import { LocalProvider } from '../../adapters/local/provider';
import { loadFederationConfig } from '../../agent/site/config-file';
import { FederationLog, placedWorkloads, type PlacedWorkload } from '../../client/federation';
import type { CommittedState } from '../../core/consensus/entries';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { WorkloadRunner } from '../../agent/workload/runner';
import { startFederation, type FederationRuntimeOptions, type RunningFederation } from '../../worker/federation-runtime';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { eventually } from './eventually';
import { startTestServer, workflowBundle } from './temporal';

export interface TestFederation {
  home: string;
  config: FederationConfig;
  /** The federation log: the one record of where workloads run. */
  log: FederationLog;
  /** The log's committed state now. */
  committed(): Promise<CommittedState>;
  /** A workload as the log places it, or undefined. */
  workload(id: string): Promise<PlacedWorkload | undefined>;
  runtime: RunningFederation;
  provider(siteId: string): LocalProvider;
  /** Stops these sites' agents (their workers), as sites going down would. */
  stopAgents(...sites: string[]): Promise<void>;
  /** Starts these sites' agents again on the same directories and keys, as restarted agents would; the caller shuts it down. */
  restartAgents(...sites: string[]): Promise<RunningFederation>;
  stop(): Promise<void>;
}

export interface TestFederationOptions {
  /** The federation config (default: the repository's federation.json). */
  config?: unknown;
  control?: boolean;
  /**
   * `false` for tests that start their own `federation-<name>` (with test settings); otherwise
   * the control worker starts it, as in production.
   */
  federationWorkflow?: boolean;
  /** Run the workload fronts (worker/fronts.ts) in the federation's process. */
  fronts?: FederationRuntimeOptions['fronts'];
}

export async function startTestFederation(env: TestWorkflowEnvironment, opts: TestFederationOptions = {}): Promise<TestFederation> {
  const home = mkdtempSync(join(tmpdir(), 'fedflow-test-'));
  const config = opts.config ? parseFederationConfig(opts.config) : loadFederationConfig();
  const start = async (more: { control?: boolean; federationWorkflow?: boolean; sites?: string[]; fronts?: FederationRuntimeOptions['fronts'] }) =>
    startFederation({ config, home, connection: env.nativeConnection, client: env.client, namespace: env.namespace ?? 'default', workflowBundle: await workflowBundle(), ...more });
  const runtime = await start({ control: opts.control, federationWorkflow: opts.federationWorkflow, fronts: opts.fronts });
  const log = new FederationLog(env.client, config.federation);
  return {
    home,
    config,
    log,
    committed: async () => (await log.view()).committed,
    workload: async (id) => placedWorkloads((await log.view()).committed).find((w) => w.id === id),
    runtime,
    async stopAgents(...sites) {
      for (const site of sites) {
        const w = runtime.agents.get(site)!.worker;
        w.shutdown();
        await eventually(`${site}'s worker to stop`, () => w.getState() === 'STOPPED');
      }
    },
    restartAgents: (...sites) => start({ sites, control: false }),
    provider: (siteId) => {
      const site = config.sites.find((s) => s.id === siteId)!;
      return new LocalProvider({ site: siteId, dir: siteDir(siteId, home), capacityInstances: site.capacity.instances });
    },
    async stop() {
      // The federation workflow belongs to this test's sites: the next federation on the same
      // server starts its own.
      await env.client.workflow.getHandle(federationWorkflowId(config.federation)).terminate('test federation stopped').catch(() => undefined);
      await runtime.shutdown();
      // Instances are detached processes: stop them so a test leaves nothing running. Every site
      // has a local side, including the stand-in workload of a cloud site's agent.
      for (const site of config.sites) {
        const p = new LocalProvider({ site: site.id, dir: siteDir(site.id, home), capacityInstances: site.capacity.instances });
        for (const ref of p.liveInstances()) await p.stopInstance(ref).catch(() => undefined);
        // And the workloads added from a spec, which the site's workload runner started.
        const runner = new WorkloadRunner({ site: site.id, siteDir: siteDir(site.id, home), fedflowRoot: REPO_ROOT });
        for (const id of runner.installedIds()) await runner.stop(id).catch(() => undefined);
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export interface ServerAndFederation {
  readonly env: TestWorkflowEnvironment;
  readonly fed: TestFederation;
}

/**
 * The integration suites' set-up, in one place: registers the suite's `before` (a dev server,
 * then a test federation on it) and its `after` (`beforeStop` first, for what the suite started
 * on top, such as workers or its own federation workflow; then the federation, then the server).
 * Call it inside `describe`, ahead of hooks that use it: `env` and `fed` exist from its `before`
 * on. `opts` may be a function, for a config only known once earlier hooks ran.
 */
export function useServerAndFederation(opts: TestFederationOptions | (() => TestFederationOptions) = {}, hooks: { beforeStop?: () => Promise<void> } = {}): ServerAndFederation {
  let env: TestWorkflowEnvironment | undefined;
  let fed: TestFederation | undefined;
  before(async () => {
    env = await startTestServer();
    fed = await startTestFederation(env, typeof opts === 'function' ? opts() : opts);
  });
  after(async () => {
    try {
      await hooks.beforeStop?.();
    } finally {
      await fed?.stop();
      await env?.teardown();
    }
  });
  const notYet = (what: string) => new Error(`${what} is started in the suite's before hook: use it in tests and in hooks registered after useServerAndFederation`);
  return {
    get env() {
      if (!env) throw notYet('the dev server');
      return env;
    },
    get fed() {
      if (!fed) throw notYet('the test federation');
      return fed;
    },
  };
}
