/**
 * migrateWorkload: validate, reserve the target, measure the link, start the target, sync the
 * volume (pre-copy rounds while the workload serves), cut over (pause and send the final delta),
 * commit the placement, switch the route, decommission. One file per step in ./steps.
 *
 * The workflow decides and the activities act: bulk bytes go agent to agent, and only ids,
 * digests and small records pass through here. Before the placement is proposed (or, in runs
 * without federation commits, before the route switch), any failure or cancel runs the saga's
 * compensations in reverse; after it, the migration rolls forward.
 *
 * Four shapes (see ./patches.ts); each branch between them is named where it is taken.
 */
import { ApplicationFailure, isCancellation, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { FailureType } from '../../core/contracts/failures';
import type { MigrationResult, StepId } from '../../core/migration';
import { FedTarget } from '../../core/search-attributes';
import { workflowShape } from './patches';
import { completedResult } from './result';
import { Saga } from './saga';
import { StepRunner } from './step-runner';
import { commitPlacement } from './steps/commit';
import { cutOver } from './steps/cutover';
import { decommission } from './steps/decommission';
import { measure } from './steps/measure';
import { reserve, skipFederationSteps } from './steps/reserve';
import { startTarget } from './steps/start';
import { switchRoute } from './steps/switch';
import { preCopy } from './steps/sync';
import { parseRequest, validate } from './steps/validate';
import type { Migration } from './context';

export { FAST_CUTOVER_PATCH, FEDERATION_COMMITS_PATCH, UPDATE_COMMITS_PATCH } from './patches';

export async function migrateWorkload(input: unknown): Promise<MigrationResult> {
  const req = parseRequest(input);
  const info = workflowInfo();
  const runner = new StepRunner(req);
  const saga = new Saga<StepId>();
  upsertSearchAttributes([{ key: FedTarget, value: req.targetSite }]);

  try {
    return await runner.work.run(async () => {
      const v = await validate(req, runner, saga);
      // Asked here, once: every recorded history has its patch markers at this point.
      const shape = workflowShape();
      const m: Migration = { req, info, v, key: `${info.workflowId}/${info.runId}`, shape, runner, saga, consensus: {} };

      if (shape.federationCommits) await reserve(m);
      else skipFederationSteps(m);
      const measured = await measure(m);
      const target = await startTarget(m);
      const sync = await preCopy(m, measured);
      const cut = await cutOver(m, sync.plan, sync.precopyRounds, target);
      if (shape.federationCommits) await commitPlacement(m, cut, target);
      const switchedAtMs = await switchRoute(m, target);
      const finishedAtMs = await decommission(m, cut);

      runner.setPhase('completed');
      return completedResult(m, { measured, target, sync, cut, switchedAtMs, finishedAtMs });
    });
  } catch (err) {
    // Past the point of no return nothing is undone: the placement may commit whatever happens here.
    if (runner.rollForward) throw err;
    return await rollBack(runner, saga, err);
  }
}

/** Runs the saga's compensations in reverse, then rethrows the original error (or says it was cancelled). */
async function rollBack(runner: StepRunner, saga: Saga<StepId>, err: unknown): Promise<never> {
  runner.progress.error = runner.cancelReason ?? (err instanceof Error ? err.message : String(err));
  runner.setPhase('compensating');
  await saga.compensate({
    compensated: (step) => {
      runner.step(step).status = 'compensated';
    },
    failed: (step, cerr) => {
      runner.step(step).detail = `compensation failed: ${cerr instanceof Error ? cerr.message : String(cerr)}`;
    },
  });
  runner.setPhase(runner.cancelReason || isCancellation(err) ? 'cancelled' : 'failed');
  if (runner.cancelReason) throw ApplicationFailure.nonRetryable(`migration cancelled: ${runner.cancelReason}; the source keeps serving`, FailureType.Cancelled);
  throw err;
}
