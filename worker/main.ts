/**
 * The worker process: control worker plus one agent per local site of the federation config.
 * `fedflow up` runs this as a child process (and restarts it if it dies); run it alone with
 * `npm run worker` to point it at any Temporal (see README: "Pointing at a real cluster").
 */
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { loadFederationConfig } from '../agent/site/config-file';
import { fedflowHome } from '../agent/site/home';
import { startFederation } from './federation-runtime';
import { resolveConnection } from '../client/connection';

async function run(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger((process.env.FEDFLOW_LOG_LEVEL as never) || 'WARN') });
  const config = loadFederationConfig();
  const conn = resolveConnection();
  const sites = process.env.FEDFLOW_SITES ? process.env.FEDFLOW_SITES.split(',') : undefined;
  const fed = await startFederation({
    config,
    home: fedflowHome(),
    sites,
    control: process.env.FEDFLOW_CONTROL !== '0',
    // A stable address per workload that follows its placement (docs/stable-address.md). On by
    // default in the process that runs the control worker, so that two worker processes sharing
    // a home do not both open the fronts; FEDFLOW_FRONTS=1 or 0 says otherwise.
    fronts: process.env.FEDFLOW_FRONTS ? process.env.FEDFLOW_FRONTS !== '0' : process.env.FEDFLOW_CONTROL !== '0',
    log: (l) => console.log(`[worker] ${l}`),
  });
  console.log(`[worker] connected to ${conn.address} namespace ${conn.namespace}; pid ${process.pid}; ready`);
  const stop = () => void fed.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await fed.done;
}

run().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
