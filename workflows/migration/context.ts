/** What every step past validation needs: the request, what validation found, and the run's state. */
import type { WorkflowInfo } from '@temporalio/workflow';
import type { ValidatedMigration } from '../../activities/control';
import type { MigrationConsensus, MigrationRequest, StepId } from '../../core/migration';
import type { Shape } from './patches';
import type { Saga } from './saga';
import type { StepRunner } from './step-runner';

export interface Migration {
  readonly req: MigrationRequest;
  readonly info: WorkflowInfo;
  /** The sites, the workload's instance and volume, and the federation, as validation found them. */
  readonly v: ValidatedMigration;
  /** `<workflowId>/<runId>`: the root of this run's idempotency keys and federation request ids. */
  readonly key: string;
  readonly shape: Shape;
  readonly runner: StepRunner;
  readonly saga: Saga<StepId>;
  /** The reservation's and the placement's certificates; shown in progress in runs that commit them. */
  readonly consensus: MigrationConsensus;
  /** The final image's root, once the cut-over captured it: the cut-over's compensation releases it. */
  finalRoot?: string;
}
