/**
 * migrateWorkload: validate, sync the volume (pre-copy rounds while the workload serves, then
 * pause and send the final delta), start the target, verify, switch the route, decommission.
 *
 * The workflow decides and the activities act: bulk bytes go agent to agent, and only ids,
 * digests and small records pass through here. Before the route switch, any failure (or a
 * cancel) runs the saga's compensations in reverse; after it, the migration rolls forward.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ControlActivities, FastProposal } from '../../activities/control';
import type { FastProposalRequest } from '../../activities/federation-propose';
import type { SiteActivities } from '../../activities/site';
import type { CapturedImage, SyncActivities } from '../../activities/sync';
import { MIGRATION_STEPS, type FederationCommitRecord, type MigrationConsensus, parseMigrationRequest, PHASE_OF_STEP, type MigrationProgress, type MigrationResult, type Mode, type Phase, type StepId } from '../../core/migration';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import { FedMode, FedPhase, FedSource, FedTarget } from '../../core/search-attributes';
import { planFromDecision } from '../../core/transfer-plan';
import type { FederationEntry } from '../../core/consensus/entries';
import { changeResult, commitFederationChange, type FederationChangeOptions } from '../federation/client';
import { measureAndDecide, type PolicyContext } from './mode-decision';
import { cancelSignal, pauseSignal, progressQuery, resumeSignal, roundSignal } from '../../core/contracts/migration-messages';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../../core/contracts/task-queues';
import { syncVolume, TOKEN_TTL_SECONDS } from './sync-volume';
import { FailureType } from '../../core/contracts/failures';


/** Named timeout sets, one per kind of step. */
const TIMEOUTS = {
  quick: { startToCloseTimeout: '1 minute' },
  start: { startToCloseTimeout: '2 minutes', heartbeatTimeout: '20 seconds' },
  capture: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '2 minutes' },
  pull: { startToCloseTimeout: '6 hours', heartbeatTimeout: '15 seconds' },
} as const satisfies Record<string, ActivityOptions>;

const RETRY = { initialInterval: '200 milliseconds', maximumInterval: '10 seconds', backoffCoefficient: 2 } as const;

/**
 * Patch: the target's reservation and the cut-over's placement are committed through the
 * federation log (steps `reserve` and `commit`). Runs recorded before it replay without them.
 */
export const FEDERATION_COMMITS_PATCH = 'federation-commits-v1';
/**
 * Patch: fewer trips through the server inside the downtime window.
 * - The target's cut-over activity starts beside the source's freeze and long-polls the source's
 *   endpoint for the final image, instead of being scheduled once the capture has returned.
 * - Reservation and placement are proposed by update from a local activity first (the answer
 *   comes back in the same call), and by signal only if that gives no answer within
 *   FAST_COMMIT_WAIT_MS; the route switch follows in the same workflow task.
 */
export const FAST_CUTOVER_PATCH = 'fast-cutover-v1';
const FAST_COMMIT_WAIT_MS = 2_000;
/** A placement commit that failed for a reason other than the log's rejection is proposed again after this, doubling up to the cap. */
const PLACEMENT_RETRY_MS = 2_000;
const PLACEMENT_RETRY_MAX_MS = 60_000;
/** A compensation's release of the reservation is not awaited past this: once sent, the federation applies it when it can. */
const RELEASE_WAIT = '30 seconds';

function describeCommit(r: FederationCommitRecord): string {
  const c = r.certificate;
  const who = c.protocol === 'cft' ? `term ${c.term} index ${c.index}, acked by ${c.ackedBy.join(', ')}` : `view ${c.view} seq ${c.seq}, commit signed by ${c.signers.join(', ')}`;
  return `${r.protocol.toUpperCase()} quorum ${r.quorum.got} of ${r.quorum.total} (need ${r.quorum.needed}): ${who}${r.waited ? ' (waited for quorum)' : ''}`;
}

/**
 * The fast path of a federation commit: one local activity that proposes by update and waits a
 * little, with no retries (the signal path behind it is the retry).
 */
function controlFast(summary: string) {
  return proxyLocalActivities<ControlActivities>({ startToCloseTimeout: FAST_COMMIT_WAIT_MS + 5_000, retry: { maximumAttempts: 1 }, summary });
}

function control(summary: string) {
  return proxyActivities<ControlActivities>({ taskQueue: CONTROL_TASK_QUEUE, ...TIMEOUTS.quick, retry: RETRY, summary });
}

/**
 * A control activity run by the worker that runs this workflow, without a trip through the task
 * queue: used inside the downtime window, where each hop through the server costs tens of ms.
 */
function controlLocal(summary: string) {
  return proxyLocalActivities<ControlActivities>({ ...TIMEOUTS.quick, retry: RETRY, summary });
}

function atSite(siteId: string, summary: string, timeouts: ActivityOptions = TIMEOUTS.quick) {
  return proxyActivities<SiteActivities>({ taskQueue: siteTaskQueue(siteId), ...timeouts, retry: RETRY, summary });
}

function atSync(siteId: string, summary: string, timeouts: ActivityOptions) {
  return proxyActivities<SyncActivities>({ taskQueue: siteTaskQueue(siteId), ...timeouts, retry: RETRY, summary });
}

export async function migrateWorkload(input: unknown): Promise<MigrationResult> {
  const parsed = parseMigrationRequest(input);
  if (!parsed.ok) {
    throw ApplicationFailure.nonRetryable(`invalid migration request: ${parsed.problems.join('; ')}`, FailureType.InvalidRequest);
  }
  const req = parsed.value;
  const info = workflowInfo();
  const expectedId = migrationWorkflowId(req.workloadId);
  if (info.workflowId !== expectedId) {
    // The id is what makes Temporal refuse a second concurrent migration of the same workload.
    throw ApplicationFailure.nonRetryable(`workflow id '${info.workflowId}' must be '${expectedId}' for workload '${req.workloadId}'`, FailureType.WrongWorkflowId);
  }

  const progress: MigrationProgress = {
    workloadId: req.workloadId,
    phase: 'validating',
    paused: false,
    target: req.targetSite,
    steps: MIGRATION_STEPS.map((s) => ({ id: s.id, title: s.title, status: 'pending' })),
    rounds: [],
    modeSwitches: [],
    bytesTransferred: 0,
  };
  let cancelReason: string | undefined;
  // Set once the commit step proposes the placement (or, in runs without it, once the route
  // switched): from then on the migration rolls forward, since the proposal may commit whatever
  // happens here. (With fast-cutover-v1 the target proposes it earlier, during the cut-over; a
  // failure there is undone by the placement-revert compensation.)
  let rollForward = false;
  const work = new CancellationScope();

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => {
    progress.paused = true;
  });
  setHandler(resumeSignal, () => {
    progress.paused = false;
  });
  setHandler(cancelSignal, (reason?: string) => {
    if (rollForward) {
      log.warn('cancel ignored: the placement is committed (or being committed), so the migration rolls forward', { reason });
      return;
    }
    cancelReason = reason ?? 'cancelled on request';
    work.cancel();
  });
  setHandler(roundSignal, (r) => {
    progress.rounds.push(r);
    progress.bytesTransferred += r.wireBytes;
    progress.bytesTotal = r.bytesScanned;
    progress.syncStatus = r.kind === 'final' ? 'final' : 'pre-copy';
    const step = progress.steps.find((s) => s.id === 'sync')!;
    step.detail = `round ${r.round} (${r.kind}): sent ${r.bytesSent} of ${r.bytesScanned} bytes, ${r.chunksReused} chunks reused`;
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
  let finalRoot: string | undefined;
  upsertSearchAttributes([{ key: FedTarget, value: req.targetSite }]);

  try {
    return await work.run(async () => {
      const v = await run('validate', () => control(`Validate: move ${req.workloadId} to ${req.targetSite}`).validateMigration(req), (v) => `${v.source} -> ${v.target}`);
      compensations.push({ step: 'validate', fn: () => control('Release the migration lock').releaseMigration({ workloadId: req.workloadId }) });
      progress.source = v.source;
      upsertSearchAttributes([{ key: FedSource, value: v.source }]);
      const key = `${info.workflowId}/${info.runId}`;

      // The federation log holds the target's capacity for this move (CFT when every site it
      // touches is trusted, BFT otherwise). Without quorum the step waits and says why.
      const viaFederation = patched(FEDERATION_COMMITS_PATCH);
      const consensus: MigrationConsensus = {};
      const commitOpts = (what: string, stepId: StepId): FederationChangeOptions => ({
        federation: v.federation,
        touches: [v.source],
        requestId: `${key}/${what}`,
        onStatus: (status) => {
          consensus.status = status;
          step(stepId).detail = status;
        },
      });
      // Runs recorded before the patch commit by signal only and cut over in sequence.
      const fast = viaFederation && patched(FAST_CUTOVER_PATCH);
      const commit = async (entries: FederationEntry[], what: string, stepId: StepId): Promise<FederationCommitRecord> => {
        const opts = commitOpts(what, stepId);
        if (fast) {
          let quick: FastProposal;
          try {
            quick = await controlFast(`Propose ${what} to the federation log`).proposeFast({
              federation: v.federation,
              proposal: { entries, touches: opts.touches, requestId: opts.requestId! },
              waitMs: FAST_COMMIT_WAIT_MS,
            });
          } catch (err) {
            quick = { pending: err instanceof Error ? err.message : String(err) };
          }
          if ('result' in quick) {
            const { rejected: _rejected, ...record } = changeResult(quick.result, {});
            return record;
          }
          // No answer yet (quorum may be missing): wait by signal, which reports why it waits.
          log.info('federation commit: no answer by update yet; waiting by signal', { requestId: opts.requestId, why: quick.pending });
        }
        const r = await commitFederationChange(entries, opts);
        delete consensus.status;
        const { rejected: _rejected, ...record } = r;
        return record;
      };
      if (viaFederation) {
        progress.consensus = consensus;
        // Pushed before the proposal: the federation applies this run's proposals in order, so a
        // release sent after a reserve that commits late still frees it.
        compensations.push({
          step: 'reserve',
          fn: async () => {
            await commitFederationChange([{ kind: 'reservation', op: 'release', workload: req.workloadId, site: v.target }], {
              ...commitOpts('release', 'reserve'),
              allowRejected: true,
              // Without quorum the release waits in the federation's queue; the rest of the saga
              // (the lock, the target copy) must not wait for it.
              timeout: RELEASE_WAIT,
            });
          },
        });
        consensus.reservation = await run(
          'reserve',
          () => commit([{ kind: 'reservation', op: 'reserve', workload: req.workloadId, site: v.target, instances: 1 }], 'reserve', 'reserve'),
          describeCommit,
        );
      } else {
        step('reserve').status = 'skipped';
        step('commit').status = 'skipped';
      }

      // Measure and predict the link, then let the policy (trust + prediction) choose the mode.
      const policy: PolicyContext = {
        source: { id: v.source, trust: v.sourceTrust },
        target: { id: v.target, trust: v.targetTrust },
        ...(req.mode ? { override: req.mode } : {}),
      };
      const measured = await run(
        'measure',
        async () => {
          const endpoint = await atSite(v.source, `Find the agent endpoint of ${v.source}`).agentEndpoint();
          return measureAndDecide(policy, { probeEndpoint: endpoint, bytes: 0 });
        },
        (m) => m.decision.reason,
      );
      const mode: Mode = measured.decision.mode;
      progress.mode = mode;
      progress.decision = measured.record;
      upsertSearchAttributes([{ key: FedMode, value: mode }]);

      // Pushed before the target is touched: a failure anywhere after this removes the target's
      // instance (found by its idempotency key) and copy, and lets the source take writes again
      // (both are no-ops when there is nothing to undo).
      const startKey = `${key}/start-target`;
      compensations.push({ step: 'sync', fn: () => atSite(v.source, `Resume writes on ${v.source}`).thawWorkload({ instance: v.instance }) });
      compensations.push({
        step: 'cutover',
        fn: async () => {
          if (finalRoot) await atSync(v.source, `Release the final image on ${v.source}`, TIMEOUTS.quick).releaseImage({ root: finalRoot });
        },
      });
      compensations.push({
        step: 'start',
        fn: () => atSite(v.target, `Remove the copy on ${v.target}`).removeTargetCopy({ name: req.workloadId, idempotencyKey: startKey, volumeId: v.volume.id }),
      });

      // The target boots in standby while pre-copy runs, so the cut-over pays only for loading data.
      const targetInstance = await run(
        'start',
        () =>
          atSite(v.target, `Boot ${req.workloadId} on ${v.target} (standby)`, TIMEOUTS.start).startInstance({
            name: req.workloadId,
            image: v.image,
            volumeId: v.volume.id,
            idempotencyKey: startKey,
            standby: true,
          }),
        (t) => `${t.instance.id} at ${t.address}, standby`,
      );

      const sync = await run(
        'sync',
        () =>
          executeChild(syncVolume, {
            workflowId: `${info.workflowId}-sync`,
            taskQueue: CONTROL_TASK_QUEUE,
            staticSummary: `Pre-copy ${v.volume.id} ${v.source} -> ${v.target} (${mode})`,
            args: [
              {
                volumeId: v.volume.id,
                source: v.source,
                target: v.target,
                mode,
                plan: planFromDecision(mode, measured.decision.plan),
                final: false,
                notify: info.workflowId,
                bandwidthMbps: measured.decision.inputs.prediction.meanMbps,
                policy: { ...policy, state: measured.decision.state },
              },
            ],
          }),
        (s) => `${s.precopyRounds} pre-copy round(s)${s.notConverging ? ', not converging' : ', converged'}; ${s.wireBytes} bytes on the wire for a ${s.volumeBytes}-byte volume`,
      );
      progress.syncStatus = sync.notConverging ? 'not converging' : 'converged';
      progress.modeSwitches = sync.modeSwitches;
      // The cut-over uses the plan the last round ended with (the mode may have switched).
      const plan = sync.plan;
      if (plan.mode !== mode) {
        progress.mode = plan.mode;
        upsertSearchAttributes([{ key: FedMode, value: plan.mode }]);
      }

      // Cut-over: the downtime window. Two activities only: freeze + capture at the source, then
      // final delta + assemble + activate + check at the target (at once since fast-cutover-v1).
      const pullArgs = {
        source: v.source,
        plan,
        round: sync.precopyRounds + 1,
        ttlSeconds: TOKEN_TTL_SECONDS,
        volumeId: v.volume.id,
        instance: targetInstance.instance,
        address: targetInstance.address,
      };
      // The fast cut-over waits for a cancelled capture to end: the thaw in the compensations must
      // come after the freeze, never before it.
      const freezeAndCapture = (publishAs?: string, cancellationType?: ActivityCancellationType) =>
        atSync(v.source, `Freeze ${req.workloadId} and capture its volume on ${v.source}`, { ...TIMEOUTS.capture, ...(cancellationType ? { cancellationType } : {}) }).captureImage({
          volumeId: v.volume.id,
          preset: plan.chunkPreset,
          freeze: v.instance,
          ...(publishAs ? { publishAs } : {}),
        });
      // The target told the image: final delta, activate, check (the whole cut-over before the patch).
      const cutInSequence = (image: CapturedImage, placement?: FastProposalRequest) =>
        atSync(v.target, `Final delta, activate ${req.workloadId} on ${v.target}, check ${image.digest!.keys} keys`, TIMEOUTS.pull).cutoverTarget({
          ...pullArgs,
          endpoint: image.endpoint,
          root: image.manifest.rootHash,
          expected: image.digest!,
          ...(placement ? { placement } : {}),
        });
      const cutDone = (image: CapturedImage, done: Awaited<ReturnType<SyncActivities['cutoverTarget']>>) => {
        progress.rounds.push(done.figures);
        progress.bytesTransferred += done.figures.wireBytes;
        return { image, figures: done.figures, served: done.served, servingAtMs: done.servingAtMs, placement: done.placement };
      };
      const cutTogether = async () => {
        // Looked up before the freeze: the target polls it for the image the freeze produces.
        const endpoint = await atSite(v.source, `Find the agent endpoint of ${v.source}`).agentEndpoint();
        const cutoverKey = `${key}/cutover`;
        // The target proposes the placement (under the request id the commit step uses) as soon as
        // it holds the frozen image, verified and on disk, while the workload activates. If the
        // cut-over fails once the image exists, the first compensation settles that proposal and
        // puts the placement back on the source. A capture that fails announces no image, so the
        // target cannot have proposed and nothing is sent (unless an earlier attempt of that
        // capture announced one and was lost before it completed, then a retry failed: not covered).
        let imageCaptured = false;
        const placement: FederationEntry = { kind: 'placement', workload: req.workloadId, site: v.target };
        const placementRequest = {
          federation: v.federation,
          proposal: { entries: [placement], touches: [v.source], requestId: commitOpts('placement', 'commit').requestId! },
          waitMs: FAST_COMMIT_WAIT_MS,
        };
        compensations.push({
          step: 'commit',
          fn: async () => {
            if (!imageCaptured) return;
            // First settle the target's proposal under its own request id: it joins it if it is
            // queued, is answered from the log's memory if it is done, or (if the target never sent
            // it) commits it now. Either way a copy sent late by a stray attempt of the target is
            // answered, not applied, and the revert below is the last word.
            try {
              const placed = await commitFederationChange([placement], { ...commitOpts('placement', 'commit'), allowRejected: true, timeout: RELEASE_WAIT });
              if (placed.rejected.length) return;
            } catch (err) {
              // Still queued (no quorum) or unreachable: the revert is queued behind it all the same.
              log.warn('placement not settled before its revert', { error: String(err) });
            }
            // Not allowRejected: a revert the log refuses (the source's slot taken meanwhile) must
            // show as a failed compensation, not pass for one that worked.
            await commitFederationChange([{ kind: 'placement', workload: req.workloadId, site: v.source }], {
              ...commitOpts('placement-revert', 'commit'),
              timeout: RELEASE_WAIT,
            });
          },
        });
        const targetScope = new CancellationScope();
        const targetDone = targetScope.run(() =>
          atSync(v.target, `Wait for the final image of ${v.source}; final delta, activate ${req.workloadId} on ${v.target}, check every key`, {
            ...TIMEOUTS.pull,
            cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
          }).cutoverTarget({
            ...pullArgs,
            endpoint,
            awaitFinal: cutoverKey,
            placement: placementRequest,
          }),
        );
        // Handled below; this keeps an early failure from counting as unhandled meanwhile.
        targetDone.catch(() => undefined);
        let image: CapturedImage;
        try {
          image = await freezeAndCapture(cutoverKey, ActivityCancellationType.WAIT_CANCELLATION_COMPLETED);
        } catch (err) {
          // No image is coming: stop the waiting target (and wait until it has stopped).
          targetScope.cancel();
          await targetDone.catch(() => undefined);
          throw err;
        }
        finalRoot = image.manifest.rootHash;
        imageCaptured = true;
        let done: Awaited<typeof targetDone>;
        if (image.endpoint !== endpoint) {
          // The source's agent came back on another address since it was asked: the target would
          // wait on the old one. Stop it and cut over in sequence, told the image.
          targetScope.cancel();
          await targetDone.catch(() => undefined);
          done = await cutInSequence(image, placementRequest);
        } else {
          done = await targetDone;
        }
        const want = image.digest!;
        // A target that waited names the image it took; one told the image took that one.
        if ((done.image && done.image.root !== image.manifest.rootHash) || done.served.keys !== want.keys || done.served.sha256 !== want.sha256) {
          throw ApplicationFailure.nonRetryable(
            `${v.target} cut over to image ${(done.image?.root ?? image.manifest.rootHash).slice(0, 12)} serving ${done.served.keys} keys (sha256 ${done.served.sha256.slice(0, 12)}), but ${v.source} froze image ${image.manifest.rootHash.slice(0, 12)} with ${want.keys} keys (sha256 ${want.sha256.slice(0, 12)})`,
            FailureType.DataMismatch,
          );
        }
        return cutDone(image, done);
      };
      const cut = await run(
        'cutover',
        fast ? cutTogether : async () => {
          const image = await freezeAndCapture();
          finalRoot = image.manifest.rootHash;
          return cutDone(image, await cutInSequence(image));
        },
        (c) => `final delta ${c.figures.bytesSent} bytes; ${c.served.keys} keys match the source`,
      );

      // "The workload now runs on the target": once proposed it may commit, so the migration rolls
      // forward from here. Only the log's rejection (which changes nothing) still compensates; any
      // other failure proposes again under the same request id, which the federation answers once.
      if (viaFederation) {
        rollForward = true;
        consensus.placement = await CancellationScope.nonCancellable(() =>
          run(
            'commit',
            async () => {
              // The target proposed it during the cut-over and got the log's answer: that is this
              // step's answer too (asking again would only cost another trip through the server).
              let answered = cut.placement && 'result' in cut.placement ? cut.placement.result : undefined;
              for (let wait = PLACEMENT_RETRY_MS; ; wait = Math.min(2 * wait, PLACEMENT_RETRY_MAX_MS)) {
                try {
                  if (answered) {
                    const r = answered;
                    answered = undefined;
                    const { rejected: _rejected, ...record } = changeResult(r, {});
                    return record;
                  }
                  return await commit([{ kind: 'placement', workload: req.workloadId, site: v.target }], 'placement', 'commit');
                } catch (err) {
                  const type = err instanceof ApplicationFailure ? err.type : undefined;
                  if (type === FailureType.FederationChangeRejected) {
                    rollForward = false;
                    throw err;
                  }
                  const why = err instanceof Error ? err.message : String(err);
                  consensus.status = `placement not committed yet (${why}); proposing again in ${wait / 1000} s`;
                  step('commit').detail = consensus.status;
                  log.warn('placement commit failed; proposing again', { error: why });
                  await sleep(wait);
                  // The federation workflow is gone: start it again (same request id, so a placement
                  // it had committed is answered, not applied twice).
                  if (type === FailureType.FederationNotRunning) await control('Start the federation workflow again').ensureFederation();
                }
              }
            },
            describeCommit,
          ),
        );
      }

      // Once the placement is committed, a cancel of the run (say from the UI) must not stop the route
      // from following it: the switch and what comes after run outside the cancellable scope.
      const switchStep = <T>(fn: () => Promise<T>) => (rollForward ? CancellationScope.nonCancellable(fn) : fn());
      const switchedAtMs = await switchStep(() => run(
        'switch',
        () =>
          // Inside the downtime window: a local activity when the run has the federation commits
          // (a shape new with that patch), a task-queue activity in runs recorded before it.
          (viaFederation ? controlLocal : control)(`Route ${req.workloadId} to ${v.target}`).switchRoute({
            workloadId: req.workloadId,
            target: v.target,
            instance: targetInstance.instance,
            volume: { ...v.volume, site: v.target },
            address: targetInstance.address,
          }),
        () => `served from ${v.target} at ${targetInstance.address}`,
      ));
      rollForward = true;

      // Past the switch the migration rolls forward: a cancel no longer reaches the last step.
      const finishedAtMs = await CancellationScope.nonCancellable(() =>
        run('decommission', async () => {
          // The final image was kept out of the downtime window; it goes now, with the source.
          await atSync(v.source, `Release the final image on ${v.source}`, TIMEOUTS.quick).releaseImage({ root: cut.image.manifest.rootHash });
          return atSite(v.source, `Remove ${req.workloadId} from ${v.source}`).decommission({ instance: v.instance, volumeId: v.volume.id });
        }),
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
        mode: plan.mode,
        decision: measured.record,
        modeSwitches: sync.modeSwitches,
        bytesTransferred: sync.wireBytes + cut.figures.wireBytes,
        volumeBytes: cut.figures.bytesScanned,
        rootHash: cut.image.manifest.rootHash,
        rounds: [...sync.rounds, cut.figures],
        precopyRounds: sync.precopyRounds,
        converged: sync.converged,
        notConverging: sync.notConverging,
        keys: cut.served.keys,
        verified: true,
        startedAtMs,
        finishedAtMs,
        durationMs: finishedAtMs - startedAtMs,
        downtimeMs: switchedAtMs - cut.image.frozenAtMs!,
        ...(consensus.reservation && consensus.placement ? { consensus: { reservation: consensus.reservation, placement: consensus.placement } } : {}),
      } satisfies MigrationResult;
    });
  } catch (err) {
    if (rollForward) throw err;
    progress.error = cancelReason ?? (err instanceof Error ? err.message : String(err));
    setPhase('compensating');
    await CancellationScope.nonCancellable(async () => {
      for (const c of compensations.reverse()) {
        try {
          await c.fn();
          step(c.step).status = 'compensated';
        } catch (cerr) {
          // A compensation that fails is logged and shown, and the rest still run; the original error wins.
          log.error('compensation failed', { step: c.step, error: String(cerr) });
          step(c.step).detail = `compensation failed: ${cerr instanceof Error ? cerr.message : String(cerr)}`;
        }
      }
    });
    setPhase(cancelReason || isCancellation(err) ? 'cancelled' : 'failed');
    if (cancelReason) throw ApplicationFailure.nonRetryable(`migration cancelled: ${cancelReason}; the source keeps serving`, FailureType.Cancelled);
    throw err;
  }
}
