/**
 * `npm run bench -- downtime --workload postgres|redis [--volume-mib N] [--runs N]`: the downtime
 * benchmark (./downtime.ts) for the two real services, added from workloads/postgres.yaml and
 * workloads/redis.yaml, on the default four-site federation with their fronts.
 *
 * Per run: the service's data is about N MiB (PostgreSQL: a table of 1 KiB rows; Redis: 64 KiB
 * random strings), a writer sends one write after another through the stable address over one
 * persistent connection (reconnecting at once when it ends: the freeze stops the server), and the
 * workload moves dc:paris -> dc:frankfurt -> dc:paris …
 * - `downtimeMs`: the longest gap between two acknowledged writes from the migration's start to
 *   its end (what a client saw);
 * - `reportedDowntimeMs`: the migration's own figure (first freeze to route switched);
 * - `gapAtCutoverMs`: the client's longest gap that overlaps the reported window (from the source's
 *   freeze as the migration recorded it, `window.frozenAtMs`, for `reportedDowntimeMs`), and
 *   `longestGapEndedAfterFreezeMs`: where the longest gap ended, from the freeze (negative: a stall
 *   before it, during pre-copy);
 * - `floorMs`: in the same run, the service's own restart on the same data, no fedflow involved:
 *   its clean stop (runner.stop) and a start on the same data until the first write succeeds;
 * - `lostWrites`: acknowledged writes missing on the target (must be 0); `volumeBytes`.
 * A summary line ends it, with the target: p50 downtime at most the floor's p50 + 150 ms.
 * The writer runs in a process of its own unless `--client in-process` (./client-process.ts).
 */
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { REPO_ROOT, siteDir } from '../agent/site/home';
import { WorkloadRunner } from '../agent/workload/runner';
import { parseWorkloadSpecText } from '../agent/workload/spec-file';
import { FedflowClient } from '../client';
import { CONTROL_TASK_QUEUE, migrationWorkflowId } from '../core/contracts/task-queues';
import type { MigrationResult } from '../core/migration';
import { startTestFederation } from '../test/helpers/federation';
import { startTestServer } from '../test/helpers/temporal';
import { SERVICES, type Service, type ServiceName, type ServiceWriterLog } from './service-clients';
import { startServiceClient, type ClientPlacement } from './client-process';

/** Over the floor, at most (issue 14). */
const OVER_FLOOR_MS = 150;
/** A floor's restart that takes no write within this is an error, not a figure. */
const FLOOR_DEADLINE_MS = 120_000;

/** The longest gap between two acknowledged writes overlapping [from, to], and where it ended (null: no gap there). */
function longestGap(acked: Map<number, number>, from: number, to: number): { ms: number; endedAt: number | null } {
  const t = [...acked.values()].sort((a, b) => a - b);
  let gap: { ms: number; endedAt: number | null } = { ms: 0, endedAt: null };
  for (let i = 1; i < t.length; i++) if (t[i]! > from && t[i - 1]! < to && t[i]! - t[i - 1]! > gap.ms) gap = { ms: t[i]! - t[i - 1]!, endedAt: t[i]! };
  return gap;
}

/**
 * The floor: the service's own clean stop and start on the same data, on the instance the workload
 * runs on now, through the site's runner as an operator would restart it (`runner.stop`: the
 * freeze hook's signal when the freeze is a clean stop, as both services' are, else SIGTERM; not
 * the freeze hook itself, which need not stop the service), timed from the stop until a write over
 * a fresh direct connection succeeds. No fedflow step, no front: the client connects to the instance.
 */
async function floorMs(service: Service, runner: WorkloadRunner, id: string): Promise<number> {
  const info = runner.info(id);
  if (!info.running || !info.address) throw new Error(`${id} does not run at ${runner.site}: no floor to take`);
  const hostPort = `${runner.host}:${info.port}`;
  const t0 = performance.now();
  await runner.stop(id);
  // On the same port (the address polled below); a start that fails ends the floor with its error.
  const starting = runner.start(id, { samePort: true });
  let failed: unknown;
  starting.catch((err: unknown) => void (failed = err ?? new Error('start failed')));
  const deadline = t0 + FLOOR_DEADLINE_MS;
  for (let n = 1_000_000_000; ; n++) {
    if (failed) throw failed;
    if (performance.now() > deadline) throw new Error(`${id} at ${runner.site} took no write within ${FLOOR_DEADLINE_MS / 1000} s of its restart: no floor`);
    try {
      const c = await service.connect(hostPort);
      try {
        await c.write(n);
        break;
      } finally {
        c.close();
      }
    } catch {
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  const ms = performance.now() - t0;
  await starting;
  return Math.round(ms);
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

export async function runServiceDowntime(name: ServiceName, opts: { runs: number; volumeMiB: number; client: ClientPlacement }, print: (line: Record<string, unknown>) => void, log: (msg: string) => void, windowPhases: (h: WorkflowHandle) => Promise<Record<string, number>>): Promise<void> {
  const service = SERVICES[name];
  const specFile = join(REPO_ROOT, 'workloads', `${name}.yaml`);
  const spec = parseWorkloadSpecText(readFileSync(specFile, 'utf8'), specFile);
  const env = await startTestServer();
  const fed = await startTestFederation(env, { fronts: true });
  // The services run as the spec's user when the agent is root: it must pass through the home.
  chmodSync(fed.home, 0o711);
  try {
    const sdk = FedflowClient.fromClient(env.client);
    const added = await sdk.addWorkload(spec, { config: fed.config, home: fed.home, site: 'dc:paris', source: specFile });
    const fronts = fed.runtime.fronts!;
    let front: string | undefined;
    for (let i = 0; i < 100 && !front; i++) {
      await fronts.sync();
      front = fronts.address(spec.id);
      if (!front) await new Promise((r) => setTimeout(r, 100));
    }
    if (!front) throw new Error(`no front for ${spec.id}: the fronts did not start`);
    log(`${spec.id} on ${added.site} at ${added.address}; stable address ${front}; seeding ${opts.volumeMiB} MiB`);
    await service.seed(front, opts.volumeMiB);
    let site = added.site;
    const downtimes: number[] = [];
    const floors: number[] = [];
    let lostWrites = 0;
    for (let run = 1; run <= opts.runs; run++) {
      const target = site === 'dc:paris' ? 'dc:frankfurt' : 'dc:paris';
      const floor = await floorMs(service, new WorkloadRunner({ site, siteDir: siteDir(site, fed.home), fedflowRoot: REPO_ROOT }), spec.id);
      floors.push(floor);
      const client = await startServiceClient(name, front, opts.client);
      await new Promise((r) => setTimeout(r, 2000));
      const startedAt = Date.now();
      let handle: WorkflowHandle;
      let r: MigrationResult;
      let writer: ServiceWriterLog & { cpuMs?: number };
      try {
        handle = await env.client.workflow.start('migrateWorkload', { taskQueue: CONTROL_TASK_QUEUE, workflowId: migrationWorkflowId(spec.id), args: [{ workloadId: spec.id, targetSite: target }] });
        r = (await handle.result()) as MigrationResult;
      } finally {
        // A few writes on the target, so the gap that ends there is seen.
        writer = await client.stop(20);
      }
      const endedAt = Date.now();
      const ks = [...writer.acked.keys()];
      const check = await service.connect(front);
      let missing = 0;
      try {
        for (let i = 0; i < ks.length; i += 1000) {
          const part = ks.slice(i, i + 1000);
          const there = await check.present(part);
          missing += part.filter((k) => !there.has(k)).length;
        }
      } finally {
        check.close();
      }
      lostWrites += missing;
      const longest = longestGap(writer.acked, startedAt, endedAt);
      const downtimeMs = longest.ms;
      downtimes.push(downtimeMs);
      const final = r.rounds.at(-1)!;
      const window = await windowPhases(handle);
      // The cut-over's own gap, and where the longest ended from the freeze (negative: a stall
      // before it, during pre-copy).
      const frozenAt = window.frozenAtMs as number | undefined;
      print({
        bench: 'downtime',
        workload: name,
        run,
        from: r.source,
        to: r.target,
        mode: r.mode,
        downtimeMs,
        reportedDowntimeMs: r.downtimeMs,
        gapAtCutoverMs: frozenAt !== undefined ? longestGap(writer.acked, frozenAt, frozenAt + r.downtimeMs).ms : null,
        longestGapEndedAfterFreezeMs: frozenAt !== undefined && longest.endedAt !== null ? longest.endedAt - frozenAt : null,
        floorMs: floor,
        lostWrites: missing,
        volumeBytes: r.volumeBytes,
        durationMs: r.durationMs,
        precopyRounds: r.precopyRounds,
        finalRound: { chunksSent: final.chunksSent, bytesSent: final.bytesSent, durationMs: final.durationMs, extract: final.extract ?? null },
        window,
        ackedWrites: writer.acked.size,
        failedWrites: writer.failed,
        clientPlacement: opts.client,
        ...(writer.cpuMs !== undefined ? { clientCpuMs: writer.cpuMs } : {}),
      });
      log(`run ${run}: ${r.source} -> ${r.target} downtime ${downtimeMs} ms (reported ${r.downtimeMs} ms), floor ${floor} ms`);
      if (missing) throw new Error(`run ${run}: ${missing} acknowledged write(s) missing on the target`);
      site = r.target;
      // Each run's writer counts from 1 again: clear what the last one wrote.
      await service.clearAcked(front);
    }
    const p50 = percentile(downtimes, 0.5);
    const p50Floor = percentile(floors, 0.5);
    print({
      bench: 'downtime',
      workload: name,
      runs: opts.runs,
      p50DowntimeMs: p50,
      p50FloorMs: p50Floor,
      lostWrites,
      minDowntimeMs: Math.min(...downtimes),
      maxDowntimeMs: Math.max(...downtimes),
      runsMs: downtimes,
      targetMs: p50Floor + OVER_FLOOR_MS,
      meetsTarget: p50 <= p50Floor + OVER_FLOOR_MS,
      volumeMiB: opts.volumeMiB,
    });
  } finally {
    await fed.stop();
    await env.teardown();
  }
}
