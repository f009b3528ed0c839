/**
 * migrateWorkload, first version: validate, snapshot, copy, start, verify, switch, decommission.
 *
 * The workflow decides and the activities act: bulk bytes go agent to agent, and only ids,
 * digests and small records pass through here. Before the route switch, any failure (or a
 * cancel) runs the saga's compensations in reverse; after it, the migration rolls forward.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control';
import type { SiteActivities } from '../activities/site';
import {
  MIGRATION_STEPS,
  migrationWorkflowId,
  parseMigrationRequest,
  PHASE_OF_STEP,
  type MigrationProgress,
  type MigrationResult,
  type Phase,
  type StepId,
} from '../core/migration';
import { FedPhase, FedSource, FedTarget } from '../core/search-attributes';
import { cancelSignal, pauseSignal, progressQuery, resumeSignal } from './messages';

export const CONTROL_TASK_QUEUE = 'fedflow';
export const siteTaskQueue = (siteId: string) => `fedflow-site-${siteId}`;

/** Named timeout sets, one per kind of step. */
const TIMEOUTS = {
  quick: { startToCloseTimeout: '1 minute' },
  copy: { startToCloseTimeout: '6 hours', heartbeatTimeout: '15 seconds' },
  start: { startToCloseTimeout: '2 minutes', heartbeatTimeout: '20 seconds' },
} as const satisfies Record<string, ActivityOptions>;

const RETRY = { initialInterval: '1 second', maximumInterval: '10 seconds', backoffCoefficient: 2 } as const;

function control(summary: string) {
  return proxyActivities<ControlActivities>({ taskQueue: CONTROL_TASK_QUEUE, ...TIMEOUTS.quick, retry: RETRY, summary });
}

function atSite(siteId: string, summary: string, timeouts: ActivityOptions = TIMEOUTS.quick) {
  return proxyActivities<SiteActivities>({ taskQueue: siteTaskQueue(siteId), ...timeouts, retry: RETRY, summary });
}

export async function migrateWorkload(input: unknown): Promise<MigrationResult> {
  const parsed = parseMigrationRequest(input);
  if (!parsed.ok) {
    throw ApplicationFailure.nonRetryable(`invalid migration request: ${parsed.problems.join('; ')}`, 'InvalidMigrationRequest');
  }
  const req = parsed.value;
  const info = workflowInfo();
  const expectedId = migrationWorkflowId(req.workloadId);
  if (info.workflowId !== expectedId) {
    // The id is what makes Temporal refuse a second concurrent migration of the same workload.
    throw ApplicationFailure.nonRetryable(`workflow id '${info.workflowId}' must be '${expectedId}' for workload '${req.workloadId}'`, 'WrongWorkflowId');
  }

  const progress: MigrationProgress = {
    workloadId: req.workloadId,
    phase: 'validating',
    paused: false,
    target: req.targetSite,
    steps: MIGRATION_STEPS.map((s) => ({ id: s.id, title: s.title, status: 'pending' })),
    bytesTransferred: 0,
  };
  let cancelReason: string | undefined;
  const work = new CancellationScope();

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => {
    progress.paused = true;
  });
  setHandler(resumeSignal, () => {
    progress.paused = false;
  });
  setHandler(cancelSignal, (reason?: string) => {
    if (switched) {
      log.warn('cancel ignored: the route has switched, so the migration rolls forward', { reason });
      return;
    }
    cancelReason = reason ?? 'cancelled on request';
    work.cancel();
  });

  const setPhase = (phase: Phase) => {
    progress.phase = phase;
    upsertSearchAttributes([{ key: FedPhase, value: phase }]);
  };
  const step = (id: StepId) => progress.steps.find((s) => s.id === id)!;
  async function run<T>(id: StepId, fn: () => Promise<T>, detail?: (t: T) => string): Promise<T> {
    // Pausing holds the migration between steps; a running step finishes first.
    await condition(() => !progress.paused);
    setPhase(PHASE_OF_STEP[id]);
    step(id).status = 'running';
    try {
      const out = await fn();
      step(id).status = 'done';
      if (detail) step(id).detail = detail(out);
      return out;
    } catch (err) {
      step(id).status = 'failed';
      throw err;
    }
  }

  const compensations: { step: StepId; fn: () => Promise<void> }[] = [];
  let switched = false;
  upsertSearchAttributes([{ key: FedTarget, value: req.targetSite }]);

  try {
    return await work.run(async () => {
      const v = await run('validate', () => control(`Validate: move ${req.workloadId} to ${req.targetSite}`).validateMigration(req), (v) => `${v.source} -> ${v.target}`);
      compensations.push({ step: 'validate', fn: () => control('Release the migration lock').releaseMigration({ workloadId: req.workloadId }) });
      progress.source = v.source;
      upsertSearchAttributes([{ key: FedSource, value: v.source }]);
      const key = `${info.workflowId}/${info.runId}`;

      const snap = await run(
        'snapshot',
        () => atSite(v.source, `Freeze and snapshot ${v.volume.id} on ${v.source}`).freezeAndSnapshot({ instance: v.instance, volume: v.volume, idempotencyKey: `${key}/snapshot` }),
        (s) => `${s.snapshotId}: ${s.sizeBytes} bytes, ${s.digest.keys} keys`,
      );
      compensations.push({ step: 'snapshot', fn: () => atSite(v.source, `Resume writes on ${v.source}`).thawWorkload({ instance: v.instance }) });
      compensations.push({ step: 'snapshot', fn: () => atSite(v.source, `Delete snapshot ${snap.snapshotId}`).deleteSnapshot({ snapshotId: snap.snapshotId }) });
      progress.bytesTotal = snap.sizeBytes;

      // Pushed before the copy, so a copy that fails half-way still has its partial files removed.
      // The target instance is found by its idempotency key, so even a start that failed after the
      // create (say, while waiting for it to run) leaves nothing behind.
      const startKey = `${key}/start-target`;
      compensations.push({
        step: 'copy',
        fn: () => atSite(v.target, `Remove the copy on ${v.target}`).removeTargetCopy({ idempotencyKey: startKey, volumeId: v.volume.id, snapshotId: snap.snapshotId }),
      });
      const copy = await run(
        'copy',
        () =>
          atSite(v.target, `Copy ${snap.sizeBytes} bytes ${v.source} -> ${v.target}`, TIMEOUTS.copy).copyVolume({
            endpoint: snap.endpoint,
            snapshotId: snap.snapshotId,
            sizeBytes: snap.sizeBytes,
            sha256: snap.sha256,
            volumeId: v.volume.id,
          }),
        (c) => `${c.bytesTransferred} bytes sent, sha256 verified${c.resumedFrom ? `, resumed at byte ${c.resumedFrom}` : ''}`,
      );
      progress.bytesTransferred = snap.sizeBytes;

      const targetInstance = await run(
        'start',
        () => atSite(v.target, `Start ${req.workloadId} on ${v.target}`, TIMEOUTS.start).startInstance({ name: req.workloadId, image: v.image, volumeId: v.volume.id, idempotencyKey: startKey }),
        (t) => `${t.instance.id} at ${t.address}`,
      );
      const served = await run(
        'verify',
        () => atSite(v.target, `Check ${req.workloadId} serves ${snap.digest.keys} keys`).verifyWorkload({ address: targetInstance.address, expected: snap.digest }),
        (d) => `${d.keys} keys match the source`,
      );

      const switchedAtMs = await run(
        'switch',
        () =>
          control(`Route ${req.workloadId} to ${v.target}`).switchRoute({
            workloadId: req.workloadId,
            target: v.target,
            instance: targetInstance.instance,
            volume: { ...v.volume, site: v.target },
            address: targetInstance.address,
          }),
        () => `served from ${v.target} at ${targetInstance.address}`,
      );
      switched = true;

      // Past the switch the migration rolls forward: a cancel no longer reaches the last step.
      const finishedAtMs = await CancellationScope.nonCancellable(() =>
        run('decommission', () =>
          atSite(v.source, `Remove ${req.workloadId} from ${v.source}`).decommission({ instance: v.instance, volumeId: v.volume.id, snapshotId: snap.snapshotId }),
        ),
      );
      setPhase('completed');
      const startedAtMs = info.runStartTime.getTime();
      return {
        workflowId: info.workflowId,
        workloadId: req.workloadId,
        status: 'completed',
        source: v.source,
        target: v.target,
        address: targetInstance.address,
        bytesTransferred: copy.bytesTransferred,
        snapshotBytes: snap.sizeBytes,
        sha256: snap.sha256,
        keys: served.keys,
        verified: true,
        startedAtMs,
        finishedAtMs,
        durationMs: finishedAtMs - startedAtMs,
        downtimeMs: switchedAtMs - snap.frozenAtMs,
        copyResumes: copy.resumedFrom > 0 ? 1 : 0,
        copyResumedAtByte: copy.resumedFrom,
      } satisfies MigrationResult;
    });
  } catch (err) {
    if (switched) throw err;
    progress.error = cancelReason ?? (err instanceof Error ? err.message : String(err));
    setPhase('compensating');
    await CancellationScope.nonCancellable(async () => {
      for (const c of compensations.reverse()) {
        try {
          await c.fn();
          step(c.step).status = 'compensated';
        } catch (cerr) {
          // A compensation that fails is logged and the rest still run; the original error wins.
          log.error('compensation failed', { step: c.step, error: String(cerr) });
        }
      }
    });
    setPhase(cancelReason || isCancellation(err) ? 'cancelled' : 'failed');
    if (cancelReason) throw ApplicationFailure.nonRetryable(`migration cancelled: ${cancelReason}; the source keeps serving`, 'MigrationCancelled');
    throw err;
  }
}
