/** Step `validate`: the request is well formed, and the control worker finds it can be done. */
import { ApplicationFailure, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ValidatedMigration } from '../../../activities/control';
import { FailureType } from '../../../core/contracts/failures';
import { migrationWorkflowId } from '../../../core/contracts/task-queues';
import { parseMigrationRequest, type MigrationRequest, type StepId } from '../../../core/migration';
import { FedSource } from '../../../core/search-attributes';
import { control } from '../proxies';
import type { Saga } from '../saga';
import type { StepRunner } from '../step-runner';

/** A bad request fails at once, before anything is created, with a non-retryable error naming the problem. */
export function parseRequest(input: unknown): MigrationRequest {
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
  return req;
}

/** The sites exist and differ, the workload exists, and this run now holds its migration lock. */
export async function validate(req: MigrationRequest, runner: StepRunner, saga: Saga<StepId>): Promise<ValidatedMigration> {
  const v = await runner.run('validate', () => control(`Validate: move ${req.workloadId} to ${req.targetSite}`).validateMigration(req), (v) => `${v.source} -> ${v.target}`);
  saga.push('validate', () => control('Release the migration lock').releaseMigration({ workloadId: req.workloadId }));
  runner.progress.source = v.source;
  upsertSearchAttributes([{ key: FedSource, value: v.source }]);
  return v;
}
