/**
 * Adding a workload to the federation from its spec, and taking it out again: what
 * `fedflow workloads add -f spec.yaml` and `fedflow workloads remove <id>` do, and the client
 * SDK's `addWorkload` / `removeWorkload`.
 *
 * Adding checks everything before it changes anything: the spec (every problem at once), the
 * site, its volumes resolving inside the site's directory, and the log (not there yet, a member
 * site with room). Then it starts the workload at the site through the site's workload runner,
 * waits for its health check, and commits the workload with its placement and spec to the
 * federation log. If the log refuses it, the instance is stopped again: nothing runs that the log
 * does not place.
 *
 * The instance is started on this machine through the runner, as `fedflow up` deploys the sample:
 * the sites of a local federation (and the local stand-ins of cloud sites) have their directories
 * here. The runner's state is on disk, so the site's agent drives the same instance afterwards
 * (activities/workload.ts).
 */
import { LocalProvider } from '../adapters/local/provider';
import { fedflowHome, REPO_ROOT, siteDir } from '../agent/site/home';
import { WorkloadError, WorkloadRunner } from '../agent/workload/runner';
import { parseWorkloadSpecText, WorkloadSpecError } from '../agent/workload/spec-file';
import { FailureType } from '../core/contracts/failures';
import type { WorkloadRecord } from '../core/consensus/entries';
import type { FederationConfig } from '../core/federation-config';
import { parseWorkloadSpec, type WorkloadSpec } from '../core/workload-spec';
import { FedflowError, type FederationLog } from './federation';

export interface WorkloadSiteOptions {
  /** The federation config: its sites, and which of them this machine holds the directories of. */
  config: FederationConfig;
  /** FEDFLOW_HOME (default: the environment's, or <repo>/.fedflow). */
  home?: string;
}

export interface AddWorkloadOptions extends WorkloadSiteOptions {
  /** Where to place it; default: the first trusted site of the config with room in the log. */
  site?: string;
  /** Where the spec came from, for messages (a file path). */
  source?: string;
}

export interface AddedWorkload {
  id: string;
  site: string;
  address: string;
  port: number;
  /** Ms from the instance's start to its first passing health check. */
  startMs: number;
  /** Where its volumes live at the site. */
  volumeRoot: string;
}

export interface RemovedWorkload {
  id: string;
  site: string;
  volumesDeleted: boolean;
}

function invalid(source: string, problems: string[], type: string = FailureType.InvalidWorkloadSpec): FedflowError {
  return new FedflowError(`invalid workload spec ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, type, problems);
}

/** A spec as given: text (YAML or JSON) or an already parsed value. Throws every problem at once. */
export function toSpec(input: string | unknown, source: string): WorkloadSpec {
  if (typeof input === 'string') {
    try {
      return parseWorkloadSpecText(input, source);
    } catch (err) {
      if (err instanceof WorkloadSpecError) throw invalid(source, err.problems);
      throw err;
    }
  }
  const parsed = parseWorkloadSpec(input);
  if (!parsed.ok) throw invalid(source, parsed.problems);
  return parsed.spec;
}

function runnerFor(opts: WorkloadSiteOptions, site: string): WorkloadRunner {
  return new WorkloadRunner({ site, siteDir: siteDir(site, opts.home ?? fedflowHome()), fedflowRoot: REPO_ROOT });
}

/** Adds a workload from its spec: validated, started at the site, healthy, then committed to the log. */
export async function addWorkload(log: FederationLog, input: string | unknown, opts: AddWorkloadOptions): Promise<AddedWorkload> {
  const source = opts.source ?? '<inline>';
  const spec = toSpec(input, source);
  if (!spec.run.local) {
    throw invalid(source, ["run.local: is required to add a workload here; the sites of this federation run workloads as local processes (a cloud site's agent runs a local stand-in)"]);
  }
  const known = opts.config.sites.map((s) => s.id);
  if (opts.site !== undefined && !known.includes(opts.site)) {
    throw new FedflowError(`site '${opts.site}' is not in the federation (known: ${known.join(', ')})`, FailureType.UnknownSite);
  }
  const { committed } = await log.view();
  const existing = committed.placements[spec.id];
  if (existing !== undefined) {
    throw new FedflowError(`workload '${spec.id}' is in the federation already (on ${existing}); remove it first (\`fedflow workloads remove ${spec.id}\`) or give the spec another id`, FailureType.WorkloadExists);
  }
  const free = (site: string) => {
    const m = committed.members[site];
    return m ? m.capacity - (committed.used[site] ?? 0) : -1;
  };
  const site = opts.site ?? opts.config.sites.find((s) => s.trust === 'trusted' && free(s.id) > 0)?.id;
  if (!site) throw new FedflowError(`no trusted site of the federation has room for '${spec.id}' (free instances: ${known.map((s) => `${s} ${Math.max(0, free(s))}`).join(', ')}); give one with --site or remove a workload`, FailureType.NoCapacity);
  if (!committed.members[site]) throw new FedflowError(`site '${site}' is not a member of the federation log yet (members: ${Object.keys(committed.members).sort().join(', ') || 'none'})`, FailureType.UnknownSite);
  if (free(site) < 1) throw new FedflowError(`site '${site}' is full (${committed.used[site] ?? 0} of ${committed.members[site]!.capacity} instances used); choose another with --site or remove a workload`, FailureType.NoCapacity);

  const runner = runnerFor(opts, site);
  // Checked before anything is created: every volume inside this workload's root in the site.
  try {
    runner.resolveVolumes(spec);
  } catch (err) {
    if (err instanceof WorkloadError) throw invalid(source, err.problems, err.type);
    throw err;
  }

  let started;
  try {
    await runner.install(spec);
    started = await runner.start(spec.id);
  } catch (err) {
    // Nothing is registered: stop what may have started; the volume is kept (a retry finds its data).
    await runner.remove(spec.id).catch(() => undefined);
    if (err instanceof WorkloadError) throw new FedflowError(err.message, err.type, err.problems);
    throw err;
  }
  const record: WorkloadRecord = {
    image: `spec:${spec.id}`,
    instance: { provider: 'local', site, id: `w-${spec.id}` },
    // The volume root: the unit a migration syncs (the local provider's volume of this id).
    volume: { provider: 'local', site, id: spec.id },
    address: started.address,
    spec,
  };
  try {
    await log.addWorkload(spec.id, site, record, `workload-add/${spec.id}/${site}/${started.pid}`);
  } catch (err) {
    // The log refused it (full, say): leave nothing running that it does not place. Any other
    // failure (a timeout after the update was accepted) may still have placed it: leave it be.
    if (err instanceof FedflowError && err.type === FailureType.FederationChangeRejected) await runner.remove(spec.id).catch(() => undefined);
    throw err;
  }
  return { id: spec.id, site, address: started.address, port: started.port, startMs: started.startMs, volumeRoot: runner.volumeRoot(spec.id) };
}

/**
 * Takes a workload out of the federation: the log first (it refuses while a migration holds a
 * reservation for it), then its instance is stopped. Its volumes are kept unless `deleteVolumes`.
 */
export async function removeWorkload(log: FederationLog, id: string, opts: WorkloadSiteOptions & { deleteVolumes?: boolean }): Promise<RemovedWorkload> {
  const { committed } = await log.view();
  const site = committed.placements[id];
  if (site === undefined) {
    const ids = Object.keys(committed.placements).sort();
    throw new FedflowError(`workload '${id}' is not in the federation (workloads: ${ids.join(', ') || 'none'})`, FailureType.UnknownWorkload);
  }
  const record = committed.workloads?.[id];
  await log.removeWorkload(id, site);
  const runner = runnerFor(opts, site);
  if (runner.installed(id)) {
    await runner.remove(id, { deleteVolumes: opts.deleteVolumes });
  } else if (record && record.instance.provider === 'local') {
    // A workload deployed without a spec (the sample): its instance is the local provider's.
    const cfg = opts.config.sites.find((s) => s.id === site);
    const provider = new LocalProvider({ site, dir: siteDir(site, opts.home ?? fedflowHome()), capacityInstances: cfg?.capacity.instances ?? 0 });
    await provider.terminateInstance(record.instance);
    if (opts.deleteVolumes) await provider.deleteVolume(record.volume.id);
  }
  return { id, site, volumesDeleted: !!opts.deleteVolumes };
}
