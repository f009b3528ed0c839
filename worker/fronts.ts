/**
 * The workload fronts of this process, fed from the federation log: the log is the only truth of
 * where a workload runs, and each front's backend is a cache of its placement record's address
 * (agent/front/). The agent layer cannot reach the client SDK, so the reading is wired here.
 *
 * Addresses are kept in `<home>/fronts.json` ({ workload: "host:port" }): the next start asks for
 * the same ports, and `fedflow up` and `fedflow workloads` print them.
 */
import type { Client } from '@temporalio/client';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { FrontSet, type FrontSetOptions } from '../agent/front/front-set';
import { FederationLog, placedWorkloads } from '../client/federation';

export const FRONTS_FILE = 'fronts.json';

export interface WorkloadFrontsOptions extends Pick<FrontSetOptions, 'intervalMs' | 'leaseMs' | 'front' | 'host' | 'log'> {
  client: Client;
  /** The federation's name, once its workflow runs (the worker's ensureFederation). */
  federation: () => Promise<string>;
  home: string;
}

/** A front set that reads the log; call start() once the federation's workflow may run. */
export function workloadFronts(opts: WorkloadFrontsOptions): FrontSet {
  let log: FederationLog | undefined;
  return new FrontSet({
    ...opts,
    addressesFile: join(opts.home, FRONTS_FILE),
    read: async () => {
      log ??= new FederationLog(opts.client, await opts.federation());
      const { committed } = await log.view();
      return placedWorkloads(committed).map((w) => ({ id: w.id, address: w.address }));
    },
  });
}

/** The fronts' addresses as the worker last wrote them: { workload: "host:port" }. */
export function readFrontAddresses(home: string): Record<string, string> {
  const p = join(home, FRONTS_FILE);
  if (!existsSync(p)) return {};
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}
