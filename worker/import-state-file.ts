/**
 * The upgrade path from the state file of earlier versions (`<home>/federation/state.json`), which
 * recorded where each workload ran beside the federation log. The log is now the one record, so
 * `fedflow up` enters those workloads in it once, then renames the file so it is never read again.
 * A workload the log already knows with its record is left as the log has it: the log wins.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { FederationLog } from '../client/federation';
import type { WorkloadRecord } from '../core/consensus/entries';
import type { InstanceRef, VolumeRef } from '../core/contracts/providers';

interface OldState {
  workloads?: Record<string, { id: string; site: string; image: string; instance: InstanceRef; volume: VolumeRef }>;
  routes?: Record<string, { site: string; address: string }>;
}

export function stateFilePath(home: string): string {
  return join(home, 'federation', 'state.json');
}

/** Returns the workloads it entered in the log; renames the file once every one is in. */
export async function importStateFile(home: string, log: FederationLog, say: (line: string) => void = () => undefined): Promise<string[]> {
  const path = stateFilePath(home);
  if (!existsSync(path)) return [];
  const old = JSON.parse(readFileSync(path, 'utf8')) as OldState;
  const { committed } = await log.view();
  const entered: string[] = [];
  for (const w of Object.values(old.workloads ?? {})) {
    if (committed.workloads?.[w.id]) continue;
    const address = old.routes?.[w.id]?.site === w.site ? old.routes[w.id]!.address : undefined;
    if (!address) {
      say(`state file: ${w.id} has no route on ${w.site}; it is not entered in the federation log (deploy it again)`);
      continue;
    }
    const record: WorkloadRecord = { image: w.image, instance: w.instance, volume: w.volume, address };
    const at = committed.placements[w.id];
    // Placed by a migration before records existed: the log's placement wins, and only a record
    // for that same site can be added. One the file puts elsewhere is stale: left out.
    if (at !== undefined && at !== w.site) {
      say(`state file: ${w.id} is on ${w.site} in the file but on ${at} in the federation log; the log wins, the file's record is dropped`);
      continue;
    }
    const requestId = `import-state-file/${w.id}/${w.site}/${w.instance.id}`;
    await log.propose([at === undefined ? { kind: 'workload', op: 'add', workload: w.id, site: w.site, record } : { kind: 'placement', workload: w.id, site: w.site, record }], requestId);
    entered.push(w.id);
    say(`state file: ${w.id} entered in the federation log on ${w.site}`);
  }
  renameSync(path, `${path}.imported`);
  return entered;
}
