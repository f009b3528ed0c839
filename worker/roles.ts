/**
 * The worker processes, one role each, the way a service manager runs them:
 *
 *   fedflow agent --site <id>   one site's agent: its worker on `fedflow-site-<id>` and its chunk
 *                               endpoint (where the site's `listen` says, advertised at its
 *                               `agentUrl`, mutual TLS with the material the config names)
 *   fedflow worker --control    the control workers only (task queue `fedflow`): workflows and
 *                               federation-level activities
 *   fedflow worker              both, for every local site (the embedded stack's worker)
 *
 * Each reaches Temporal through envconfig (client/connection.ts), stops cleanly on SIGTERM or
 * SIGINT, and logs one `...; pid <pid>; ready` line once it polls.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadFederationConfig } from '../agent/site/config-file';
import { fedflowHome } from '../agent/site/home';
import { resolveConnection } from '../client/connection';
import type { FederationConfig } from '../core/federation-config';
import { startFederation, type FederationRuntimeOptions } from './federation-runtime';

export class RoleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RoleError';
  }
}

/** The one site this agent runs, checked against the config. */
export function agentSite(config: FederationConfig, site: string | undefined): string {
  const known = config.sites.map((s) => s.id).join(', ');
  if (!site) throw new RoleError(`fedflow agent needs --site <id>: one of ${known}`);
  if (!config.sites.some((s) => s.id === site)) throw new RoleError(`site '${site}' is not in federation '${config.federation}' (its sites: ${known})`);
  return site;
}

interface RoleRun {
  /** Printed before `; pid <pid>; ready`. */
  who: string;
  options: Omit<FederationRuntimeOptions, 'config' | 'home' | 'log'>;
}

async function runRole(config: FederationConfig, role: RoleRun): Promise<void> {
  Runtime.install({ logger: new DefaultLogger((process.env.FEDFLOW_LOG_LEVEL as never) || 'WARN') });
  const conn = resolveConnection();
  const fed = await startFederation({ config, home: fedflowHome(), ...role.options, log: (l) => console.log(`[${role.who}] ${l}`) });
  console.log(`[${role.who}] connected to ${conn.address} namespace ${conn.namespace}; pid ${process.pid}; ready`);
  const stop = () => void fed.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await fed.done;
}

/** `fedflow agent --site <id>`: the site's agent and its worker, nothing else. Its TLS material must exist (`fedflow certs`). */
export async function runAgent(site: string | undefined, config = loadFederationConfig()): Promise<void> {
  const id = agentSite(config, site);
  await runRole(config, { who: `agent ${id}`, options: { sites: [id], control: false, fronts: false, makeCerts: false } });
}

/** `fedflow worker --control`: control workers only; no agent, no chunk endpoint. */
export async function runControl(config = loadFederationConfig()): Promise<void> {
  await runRole(config, { who: 'control', options: { sites: [], control: true, fronts: process.env.FEDFLOW_FRONTS === '1' } });
}

/**
 * `fedflow worker` / `npm run worker`: the control worker and the agents of the local sites in one
 * process (FEDFLOW_SITES and FEDFLOW_CONTROL narrow it), as the embedded stack runs it.
 */
export async function runCombined(config = loadFederationConfig()): Promise<void> {
  const sites = process.env.FEDFLOW_SITES ? (process.env.FEDFLOW_SITES === 'none' ? [] : process.env.FEDFLOW_SITES.split(',')) : undefined;
  const control = process.env.FEDFLOW_CONTROL !== '0';
  await runRole(config, {
    who: 'worker',
    options: {
      sites,
      control,
      // A stable address per workload that follows its placement (docs/stable-address.md). On by
      // default in the process that runs the control worker, so that two worker processes sharing
      // a home do not both open the fronts; FEDFLOW_FRONTS=1 or 0 says otherwise.
      fronts: process.env.FEDFLOW_FRONTS ? process.env.FEDFLOW_FRONTS !== '0' : control,
    },
  });
}
