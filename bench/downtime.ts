/**
 * `npm run bench -- downtime [--workload kv] [--volume-mib N] [--runs N] [--keys N] [--value-bytes N] [--client process|in-process]`
 *
 * Downtime of a live migration on a real Temporal dev server, on an unshaped local link (the
 * default four-site federation, as `npm start` runs it): the sample workload `kv-demo` (2000 keys
 * × 1 KiB by default; `--volume-mib N` seeds about N MiB in 64 KiB values instead) moves
 * dc:paris -> dc:frankfurt -> dc:paris … while two writers PUT new 16 KiB keys at ~1 MB/s.
 *
 * Per run, one JSON line:
 * - `downtimeMs`: what a client saw: the longest gap between two acknowledged writes around the
 *   cut-over, every write sent to the workload's stable address (its front, agent/front/), which
 *   holds new connections at the freeze and forwards them to the target at the switch.
 * - `reportedDowntimeMs`: the migration's own figure, from the source's first freeze until the
 *   route pointed at the target serving the frozen state.
 * - `gapAtFreezeMs`: the client's gap of the cut-over (last write acknowledged before the front's
 *   switch to the first after it; without a switch, around the source's freeze as the migration
 *   recorded it, `window.frozenAtMs`), and `longestGapEndedAfterFreezeMs`: where the longest gap
 *   ended, from the freeze (negative: a stall before the freeze, during pre-copy). `client` splits
 *   the cut-over's gap at the freeze and the front's switch.
 * - `floorMs`: the service's own restart floor on this machine, in the same run: a clean stop
 *   (SIGTERM) plus a start of the same service on a copy of the same data, until its health check
 *   answers; no fedflow involved.
 * - `lostWrites`: acknowledged writes missing on the target (must be 0); `volumeBytes`.
 * - `window`: the cut-over's steps from the migration's history and its activities' results
 *   (`sourceSteps`, `targetSteps`: ms from each activity's start), and `placementRound`: the target's
 *   placement proposal inside the federation workflow (its workflow tasks' time at the worker, each
 *   site delivery's dispatch and run).
 * At the end, one summary line with `workload`, `p50DowntimeMs`, `p50FloorMs`, `lostWrites`, and
 * the target (the sample: p50 ≤ 150 ms, issue 14).
 *
 * The client (the writers) runs in a process of its own (./client-process.ts), as a real client
 * does; `--client in-process` runs it inside the benchmark's process, beside every agent, front
 * and worker, as the benchmark did before 2026-12-03 20:49 UTC (8f21c85).
 *
 * `--workload postgres|redis` moves the real services instead (./downtime-services.ts).
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { LocalProvider } from '../adapters/local/provider';
import { REPO_ROOT, siteDir } from '../agent/site/home';
import { FederationLog } from '../client/federation';
import { type MigrationResult } from '../core/migration';
import { federationWorkflowId, migrationWorkflowId } from '../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';
import { deploySampleWorkload } from '../worker/deploy-sample';
import { startTestServer } from '../test/helpers/temporal';
import { startTestFederation } from '../test/helpers/federation';
import { percentile, runServiceDowntime } from './downtime-services';
import { ackGapAround, longestAckGapAt, valueFor, type WriterLog } from '../test/helpers/writer';
import { startKvClient, type ClientPlacement } from './client-process';

const WORKLOADS = ['kv', 'postgres', 'redis'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Args {
  workload: Workload;
  /** Where the client runs: a process of its own (the default), or inside this one (as before 2026-12-03 20:49 UTC, 8f21c85). */
  client: ClientPlacement;
  runs: number;
  keys: number;
  valueBytes: number;
  volumeMiB?: number;
}

/** The sample's target (issue 14): p50 downtime at most this. */
const TARGET_MS = 150;

function parseArgs(argv: string[]): Args {
  const a: Args = { workload: 'kv', client: 'process', runs: 5, keys: 2000, valueBytes: 1024 };
  const usage = 'expected --workload kv|postgres|redis, --volume-mib N, --runs N, --keys N, --value-bytes N, --client process|in-process';
  let keysGiven = false;
  let valueGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (flag === '--workload') {
      if (!WORKLOADS.includes(value as Workload)) throw new Error(`--workload is '${String(value).slice(0, 40)}'; this benchmark moves ${WORKLOADS.join(', ')}`);
      a.workload = value as Workload;
      continue;
    }
    if (flag === '--client') {
      if (value !== 'process' && value !== 'in-process') throw new Error(`--client is '${String(value).slice(0, 40)}'; expected process (the client in a process of its own) or in-process`);
      a.client = value;
      continue;
    }
    const fields: Record<string, 'runs' | 'keys' | 'valueBytes' | 'volumeMiB'> = { '--runs': 'runs', '--keys': 'keys', '--value-bytes': 'valueBytes', '--volume-mib': 'volumeMiB' };
    const field = fields[flag];
    if (!field) throw new Error(`unknown argument '${flag.slice(0, 40)}'; ${usage}`);
    const n = Number(value);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} is '${String(value).slice(0, 40)}'; expected an integer >= 1`);
    a[field] = n;
    if (field === 'keys') keysGiven = true;
    if (field === 'valueBytes') valueGiven = true;
  }
  if (a.volumeMiB !== undefined) {
    if (keysGiven) throw new Error('--volume-mib and --keys both set the volume; give one');
    if (!valueGiven) a.valueBytes = 64 << 10;
    a.keys = Math.max(1, Math.ceil((a.volumeMiB * (1 << 20)) / a.valueBytes));
  }
  return a;
}

const log = (msg: string) => process.stderr.write(`[bench downtime] ${msg}\n`);
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

/** Starts the sample service on `data` and resolves once /health answers 200 (with its process). */
async function startKv(data: string): Promise<{ stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', data, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"listening":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`kv-server exited (${code}) before listening: ${out.slice(-300)}`)));
  });
  for (;;) {
    const ok = await fetch(`${address}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** The restart floor: a clean stop and a start of the service on a copy of the volume, until healthy. */
async function kvFloorMs(volumeDir: string): Promise<number> {
  const copy = mkdtempSync(join(tmpdir(), 'fedflow-floor-'));
  try {
    await cp(volumeDir, copy, { recursive: true, mode: fsConstants.COPYFILE_FICLONE });
    const first = await startKv(copy);
    const t0 = performance.now();
    await first.stop();
    const second = await startKv(copy);
    const ms = performance.now() - t0;
    await second.stop();
    return Math.round(ms);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** What the sample's activation at `site` reported last (its instance log's `kv-server: activated` line). */
function lastActivation(home: string, site: string): Record<string, number> | undefined {
  const dir = join(siteDir(site, home), 'instances');
  if (!existsSync(dir)) return undefined;
  const logs = readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => join(dir, f))
    .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs);
  for (const f of logs) {
    const line = readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('kv-server: activated ')).at(-1);
    if (line) return JSON.parse(line.slice('kv-server: activated '.length)) as Record<string, number>;
  }
  return undefined;
}

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

const ms = (e: HistoryEvent | undefined) => (e?.eventTime ? Number(e.eventTime.seconds) * 1000 + Math.round((e.eventTime.nanos ?? 0) / 1e6) : NaN);

/**
 * Where the downtime window went, from the migration's own history (server time, ms; local
 * activities' completion times are the worker's, on this same machine): the final capture
 * (freeze included); the cut-over (final delta, activate, check every key; with the fast cut-over,
 * patch fast-cutover-v1, also the placement commit, which the target proposes); the hop from its
 * end to the next workflow task; the commit step (0 when the target's proposal answered it) and
 * the route switch. In older runs: the hop to the cut-over activity, and the commit by signal
 * until its answer arrived.
 */
async function windowPhases(handle: WorkflowHandle): Promise<Record<string, number>> {
  const events = (await handle.fetchHistory()).events ?? [];
  const last = (pred: (e: HistoryEvent) => boolean) => [...events].reverse().find(pred);
  const activity = (name: string) => {
    const scheduled = last((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === name);
    const id = Number(scheduled?.eventId);
    const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === id);
    const completed = events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === id);
    return { scheduled, started, completed };
  };
  const capture = activity('captureImage');
  const cutover = activity('cutoverTarget');
  // The steps inside each activity, from its own result (`phases`, ms from its start), and what the capture reused.
  const result = (e: HistoryEvent | undefined) => {
    const data = e?.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
    try {
      return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { phases?: Record<string, number>; reuse?: Record<string, number>; frozenAtMs?: number }) : undefined;
    } catch {
      return undefined;
    }
  };
  const inside = {
    ...(result(capture.completed)?.phases ? { sourceSteps: result(capture.completed)!.phases } : {}),
    ...(result(capture.completed)?.reuse ? { sourceReuse: result(capture.completed)!.reuse } : {}),
    ...(result(cutover.completed)?.phases ? { targetSteps: result(cutover.completed)!.phases } : {}),
    // When the source's agent began the freeze (ms since the epoch): the migration's own downtime counts from it.
    ...(result(capture.completed)?.frozenAtMs !== undefined ? { frozenAtMs: result(capture.completed)!.frozenAtMs } : {}),
  } as unknown as Record<string, number>;
  const phases = {
    captureMs: ms(capture.completed) - ms(capture.started),
    toCutoverMs: ms(cutover.started) - ms(capture.completed),
    cutoverMs: ms(cutover.completed) - ms(cutover.started),
  };
  // Runs with the commit by update: local activities, whose markers carry their completion time.
  // Local activities' markers carry their completion time; only those after the cut-over count.
  const localDone = (type: string) => {
    for (const e of events) {
      if (Number(e.eventId) <= Number(cutover.completed?.eventId ?? Infinity)) continue;
      const data = e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data;
      if (!data) continue;
      const d = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string; complete_time?: { seconds: number | string; nanos?: number } };
      if (d.activity_type === type && d.complete_time) return Number(d.complete_time.seconds) * 1000 + Math.round((d.complete_time.nanos ?? 0) / 1e6);
    }
    return undefined;
  };
  const switched = localDone('switchRoute');
  if (ms(cutover.started) < ms(capture.completed) && switched !== undefined) {
    // The fast cut-over: the target's activity started before the freeze and waited for the
    // image, so its share of the window runs from the capture's end to its own. The placement
    // commit runs inside it; the commit step asks the federation again only if the target got no
    // answer (then `commitMs` is that local activity).
    const next = events.find((e) => !!e.workflowTaskStartedEventAttributes && Number(e.eventId) > Number(cutover.completed?.eventId ?? 0));
    const asked = localDone('proposeFast');
    const placement = await placementRound(handle, cutover.scheduled);
    return {
      ...inside,
      ...((placement ? { placementRound: placement } : {}) as unknown as Record<string, number>),
      captureMs: phases.captureMs,
      // The target's activity, from its start (before the freeze) to its end; its steps are from its start too.
      targetStartedBeforeCaptureEndMs: ms(capture.completed) - ms(cutover.started),
      cutoverMs: ms(cutover.completed) - ms(capture.completed),
      toCommitMs: ms(next) - ms(cutover.completed),
      commitMs: asked === undefined ? 0 : asked - ms(next),
      switchMs: switched - (asked ?? ms(next)),
    };
  }
  // Runs before the patch: the commit by signal until its answer arrived.
  const answer = last((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'federationCommitResult');
  const marker = last((e) => !!e.markerRecordedEventAttributes && Number(e.eventId) > Number(answer?.eventId ?? 0));
  return { ...inside, ...phases, commitMs: ms(answer) - ms(cutover.completed), switchMs: ms(marker) - ms(answer) };
}


/**
 * Where the target's placement proposal went inside the federation workflow (its history, server
 * time): from the workflow task that took the update to the update's completion, each workflow
 * task's time at the worker (started to completed) and each site delivery (`cftDeliver` or a BFT
 * step) from its scheduling to its start (dispatch) and to its completion. Undefined when the
 * cut-over sent no placement (older shapes) or the update is not in the history.
 */
async function placementRound(handle: WorkflowHandle, cutoverScheduled: HistoryEvent | undefined): Promise<Record<string, unknown> | undefined> {
  const input = cutoverScheduled?.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data;
  if (!input) return undefined;
  const args = JSON.parse(Buffer.from(input).toString('utf8')) as { placement?: { federation: string; proposal: { requestId: string } } };
  if (!args.placement) return undefined;
  const fed = handle.client.getHandle(federationWorkflowId(args.placement.federation));
  const events = (await fed.fetchHistory()).events ?? [];
  const id = args.placement.proposal.requestId;
  const accepted = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.meta?.updateId === id);
  const completed = events.findIndex((e) => e.workflowExecutionUpdateCompletedEventAttributes?.meta?.updateId === id);
  if (accepted < 0 || completed < 0) return undefined;
  // The workflow task that took the update: the last one scheduled before its acceptance.
  let from = accepted;
  while (from > 0 && !events[from]!.workflowTaskScheduledEventAttributes) from--;
  const span = events.slice(from, completed + 1);
  const byId = new Map(events.map((e) => [Number(e.eventId), e]));
  const taskMs: number[] = [];
  const deliveries: { activity: string; dispatchMs: number; runMs: number }[] = [];
  for (const e of span) {
    const started = e.workflowTaskCompletedEventAttributes ? byId.get(Number(e.workflowTaskCompletedEventAttributes.startedEventId)) : undefined;
    if (started) taskMs.push(ms(e) - ms(started));
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (done) {
      const scheduled = byId.get(Number(done.scheduledEventId));
      const start = events.find((x) => Number(x.activityTaskStartedEventAttributes?.scheduledEventId) === Number(done.scheduledEventId));
      deliveries.push({ activity: scheduled?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?', dispatchMs: ms(start) - ms(scheduled), runMs: ms(e) - ms(start) });
    }
  }
  return { ms: ms(events[completed]) - ms(events[from]), workflowTasks: taskMs.length, workflowTaskMs: taskMs, deliveries };
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  if (a.workload !== 'kv') return runServiceDowntime(a.workload, { runs: a.runs, volumeMiB: a.volumeMiB ?? 64, client: a.client }, print, log, windowPhases);
  const env = await startTestServer();
  // The workloads' fronts run in the federation's process: clients use the stable address.
  const fed = await startTestFederation(env, { fronts: true });
  let conn: Connection | undefined;
  try {
    log(`seeding ${a.keys} keys × ${a.valueBytes} B`);
    const sample = await deploySampleWorkload({ client: env.client, config: fed.config, home: fed.home, keys: a.keys, valueBytes: a.valueBytes });
    conn = await Connection.connect({ address: env.address });
    const client = new Client({ connection: conn });
    const fedLog = new FederationLog(client, fed.config.federation);
    const where = async () => (await fedLog.workloads()).find((w) => w.id === sample.workloadId);
    const fronts = fed.runtime.fronts!;
    await fronts.sync();
    const front = fronts.address(sample.workloadId);
    if (!front) throw new Error(`no front for ${sample.workloadId}: the fronts did not start`);
    // Every client request goes through the stable address, which follows the route.
    const address = `http://${front}`;
    log(`stable address of ${sample.workloadId}: ${front}`);
    let site = sample.site;
    const downtimes: number[] = [];
    const floors: number[] = [];
    let lostWrites = 0;
    for (let i = 1; i <= a.runs; i++) {
      const target = site === 'dc:paris' ? 'dc:frankfurt' : 'dc:paris';
      // The floor, on the data this run moves, before the writers start.
      const record = await where();
      if (!record) throw new Error(`the federation log has no record of ${sample.workloadId}`);
      const volumeDir = new LocalProvider({ site, dir: siteDir(site, fed.home), capacityInstances: 1 }).volumePath(record.volume.id);
      const floorMs = await kvFloorMs(volumeDir);
      floors.push(floorMs);
      const writerClient = await startKvClient(address, a.client);
      // This process runs every agent, front and worker: a long synchronous step of any of them
      // stalls the front's forwarding and the writers alike, and shows here.
      const loopDelay = monitorEventLoopDelay({ resolution: 10 });
      loopDelay.enable();
      // When the loop stalled (over 100 ms), to tell a stall in the window from one in pre-copy.
      const stalls: { at: number; ms: number }[] = [];
      let tick = performance.now();
      const stallTimer = setInterval(() => {
        const now = performance.now();
        if (now - tick > 110) stalls.push({ at: Date.now() - Math.round(now - tick), ms: Math.round(now - tick - 10) });
        tick = now;
      }, 10).unref();
      // Let the writers get going so pre-copy copies live data and the freeze meets writes.
      await new Promise((r) => setTimeout(r, 2000));
      const startedAt = Date.now();
      let handle: WorkflowHandle;
      let r: MigrationResult;
      let writerLog: WriterLog & { cpuMs?: number };
      try {
        handle = await client.workflow.start('migrateWorkload', {
          taskQueue: CONTROL_TASK_QUEUE,
          workflowId: migrationWorkflowId(sample.workloadId),
          args: [{ workloadId: sample.workloadId, targetSite: target }],
        });
        r = (await handle.result()) as MigrationResult;
      } finally {
        clearInterval(stallTimer);
        // A few writes on the target, so the gap that ends there is seen (after a failed
        // migration: the source's, or none in 30 s from the client process).
        writerLog = await writerClient.stop(4);
      }
      const writer = { log: writerLog };
      // The source's freeze, as the migration recorded it (when its agent began the freeze, the
      // same machine's clock; the migration's own downtime counts from it too). A writer sees one
      // refusal at most: the frozen sample ends the connection it refused, and the front holds
      // the new one until the switch.
      const window = await windowPhases(handle);
      const frozenAt = (window.frozenAtMs as number | undefined) ?? writer.log.firstFrozenAt;
      const seconds = ((frozenAt ?? Date.now()) - writer.log.startedAt) / 1000;
      // Each acknowledged key read back from the target (the whole map of a 1 GiB volume is more
      // than one JavaScript string can hold).
      let missing = 0;
      const ackedKeys = [...writer.log.acked.keys()];
      for (let k = 0; k < ackedKeys.length; k += 16) {
        const got = await Promise.all(ackedKeys.slice(k, k + 16).map(async (key) => (await fetch(`${r.address}/kv/${key}`)).text()));
        missing += got.filter((v, j) => v !== valueFor(ackedKeys[k + j]!)).length;
      }
      lostWrites += missing;
      const longest = longestAckGapAt(writer.log, startedAt);
      const downtimeMs = longest.ms;
      // Where the longest gap was: the one around the freeze, or a stall elsewhere in the
      // migration (every agent and front share this process here).
      const final = r.rounds.at(-1)!;
      downtimes.push(downtimeMs);
      // The client's gap in three parts, on this machine's clock: its last acknowledged write to
      // the source's freeze, the freeze to the front's switch, the switch to its first write
      // acknowledged after it (the target's first answers, and the client's own event loop).
      // null when a part cannot be told: no freeze recorded, no switch in this run, no ack on a side.
      const lastSwitch = fronts.stats()[sample.workloadId]?.lastSwitch;
      const switchedAt = lastSwitch && lastSwitch.atMs >= startedAt ? lastSwitch : undefined;
      // The cut-over's gap is the one around the front's switch (a write acknowledged while the
      // freeze was under way would end a small gap around the freeze itself); without a switch,
      // the one around the freeze.
      const gapAtFreeze = switchedAt ? ackGapAround(writer.log, switchedAt.atMs) : frozenAt === undefined ? undefined : ackGapAround(writer.log, frozenAt);
      const ackTimes = [...writer.log.acked.values()];
      const before = switchedAt ? ackTimes.filter((t) => t <= switchedAt.atMs) : [];
      const after = switchedAt ? ackTimes.filter((t) => t > switchedAt.atMs) : [];
      // The three parts add up to that gap; the first is negative when a write was acknowledged
      // after the freeze began (it reached the sample before the freeze did).
      const clientGap =
        frozenAt === undefined || !switchedAt || !before.length || !after.length
          ? null
          : {
              lastAckToFreezeMs: frozenAt - Math.max(...before),
              freezeToSwitchMs: switchedAt.atMs - frozenAt,
              switchedBy: switchedAt.by,
              switchToAckMs: Math.min(...after) - switchedAt.atMs,
            };
      print({
        bench: 'downtime',
        workload: a.workload,
        run: i,
        from: r.source,
        to: r.target,
        mode: r.mode,
        downtimeMs,
        reportedDowntimeMs: r.downtimeMs,
        ...(gapAtFreeze !== undefined ? { gapAtFreezeMs: gapAtFreeze } : {}),
        ...(frozenAt !== undefined ? { longestGapEndedAfterFreezeMs: longest.endedAt - frozenAt } : {}),
        floorMs,
        client: clientGap,
        // Writes the frozen source refused (503), and when the first came, from the freeze.
        refusedWrites: writer.log.frozen,
        // Writes that failed otherwise (a connection reset or refused, a timeout): never acknowledged.
        failedWrites: writer.log.failed,
        ...(writer.log.firstFrozenAt !== undefined && frozenAt !== undefined ? { firstRefusalAfterFreezeMs: writer.log.firstFrozenAt - frozenAt } : {}),
        clientPlacement: a.client,
        ...(writerLog.cpuMs !== undefined ? { clientCpuMs: writerLog.cpuMs } : {}),
        lostWrites: missing,
        volumeBytes: r.volumeBytes,
        durationMs: r.durationMs,
        precopyRounds: r.precopyRounds,
        // Per pre-copy round: how long it waited for the target's standby to read its volume ahead.
        precopyStandby: r.rounds.filter((x) => x.kind === 'precopy').map((x) => x.standby ?? null),
        finalRound: { chunksSent: final.chunksSent, bytesSent: final.bytesSent, durationMs: final.durationMs, extract: final.extract ?? null },
        window,
        targetActivation: lastActivation(fed.home, r.target) ?? null,
        eventLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
        // Stalls over 100 ms: their length, and when they began relative to the source's freeze.
        eventLoopStalls: stalls.map((x) => ({ ms: x.ms, ...(frozenAt !== undefined ? { fromFreezeMs: x.at - frozenAt } : {}) })),
        placementCommit: r.consensus ? { protocol: r.consensus.placement.protocol, waitedMs: r.consensus.placement.waitedMs } : null,
        writerMBps: Number((writer.log.ackedBytes / 1e6 / seconds).toFixed(2)),
        ackedKeys: writer.log.acked.size,
        keysAtCutover: r.keys,
      });
      loopDelay.disable();
      log(`run ${i}: ${r.source} -> ${r.target} downtime ${downtimeMs} ms (reported ${r.downtimeMs} ms), floor ${floorMs} ms`);
      if (missing) throw new Error(`run ${i}: ${missing} acknowledged write(s) missing on the target`);
      site = r.target;
    }
    const p50 = percentile(downtimes, 0.5);
    print({
      bench: 'downtime',
      workload: a.workload,
      runs: a.runs,
      p50DowntimeMs: p50,
      p50FloorMs: percentile(floors, 0.5),
      lostWrites,
      minDowntimeMs: Math.min(...downtimes),
      maxDowntimeMs: Math.max(...downtimes),
      runsMs: downtimes,
      targetMs: TARGET_MS,
      meetsTarget: p50 <= TARGET_MS,
      sample: { keys: a.keys, valueBytes: a.valueBytes, writers: '2 × 16 KiB every 32 ms (~1 MB/s)' },
    });
  } finally {
    await conn?.close();
    await fed.stop();
    await env.teardown();
  }
}
