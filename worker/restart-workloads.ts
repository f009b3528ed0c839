/**
 * `fedflow up` on a home whose log places workloads added from a spec: each one placed on a site
 * of this machine is started again by its site's runner (on the port it had, when free), and if it
 * came back on another address the log is told. `fedflow down` stopped them; the log still places them.
 */
import { REPO_ROOT, siteDir } from '../agent/site/home';
import { WorkloadRunner } from '../agent/workload/runner';
import type { FederationLog } from '../client/federation';
import type { FederationConfig } from '../core/federation-config';

export async function restartSpecWorkloads(log: FederationLog, config: FederationConfig, home: string, say: (line: string) => void): Promise<string[]> {
  const started: string[] = [];
  for (const w of await log.workloads()) {
    if (!w.spec || !config.sites.some((s) => s.id === w.site)) continue;
    const runner = new WorkloadRunner({ site: w.site, siteDir: siteDir(w.site, home), fedflowRoot: REPO_ROOT });
    try {
      // Installing again keeps the data: a volume that is not empty is not initialised again.
      if (!runner.installed(w.id)) await runner.install(w.spec);
      const st = await runner.start(w.id);
      if (st.address !== w.address) {
        // Placing it where it runs takes no capacity; it only tells the log the new address.
        const { id: _id, site: _site, ...record } = w;
        await log.propose([{ kind: 'placement', workload: w.id, site: w.site, record: { ...record, address: st.address } }]);
      }
      started.push(w.id);
      say(`workload ${w.id}: running on ${w.site} at ${st.address}`);
    } catch (err) {
      // One workload that cannot start does not keep the stack down: say why, go on.
      say(`workload ${w.id} on ${w.site} did not start: ${(err as Error).message}`);
    }
  }
  return started;
}
