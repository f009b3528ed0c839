/**
 * The migration's progress and the messages that read or steer it: the `progress` query, the
 * `pause`, `resume`, `cancel` and `round` signals, and `run(stepId, fn)`, which waits while the
 * migration is paused, then runs one step and records how it went.
 */
import { CancellationScope, condition, log, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { MIGRATION_STEPS, PHASE_OF_STEP, type MigrationProgress, type MigrationRequest, type Phase, type StepId, type StepProgress } from '../../core/migration';
import { FedPhase } from '../../core/search-attributes';
import { cancelSignal, pauseSignal, progressQuery, resumeSignal, roundSignal } from '../../core/contracts/migration-messages';

export class StepRunner {
  readonly progress: MigrationProgress;
  /** Why the run was cancelled on request, if it was. */
  cancelReason: string | undefined;
  /**
   * Set once the commit step proposes the placement (or, in runs without it, once the route
   * switched): from then on the migration rolls forward, since the proposal may commit whatever
   * happens here. (With fast-cutover-v1 the target proposes it earlier, during the cut-over; a
   * failure there is undone by the placement-revert compensation.)
   */
  rollForward = false;
  /** The steps run inside it; a cancel on request cancels it. */
  readonly work: CancellationScope;

  constructor(req: MigrationRequest) {
    this.progress = {
      workloadId: req.workloadId,
      phase: 'validating',
      paused: false,
      target: req.targetSite,
      steps: MIGRATION_STEPS.map((s) => ({ id: s.id, title: s.title, status: 'pending' })),
      rounds: [],
      modeSwitches: [],
      bytesTransferred: 0,
    };
    this.work = new CancellationScope();
    this.installHandlers();
  }

  private installHandlers(): void {
    const progress = this.progress;
    setHandler(progressQuery, () => progress);
    setHandler(pauseSignal, () => {
      progress.paused = true;
    });
    setHandler(resumeSignal, () => {
      progress.paused = false;
    });
    setHandler(cancelSignal, (reason?: string) => {
      if (this.rollForward) {
        log.warn('cancel ignored: the placement is committed (or being committed), so the migration rolls forward', { reason });
        return;
      }
      this.cancelReason = reason ?? 'cancelled on request';
      this.work.cancel();
    });
    setHandler(roundSignal, (r) => {
      progress.rounds.push(r);
      progress.bytesTransferred += r.wireBytes;
      if (r.resentBytes) progress.resentBytes = (progress.resentBytes ?? 0) + r.resentBytes;
      progress.bytesTotal = r.bytesScanned;
      progress.syncStatus = r.kind === 'final' ? 'final' : 'pre-copy';
      this.step('sync').detail = `round ${r.round} (${r.kind}): sent ${r.bytesSent} of ${r.bytesScanned} bytes, ${r.chunksReused} chunks reused`;
    });
  }

  setPhase(phase: Phase): void {
    this.progress.phase = phase;
    upsertSearchAttributes([{ key: FedPhase, value: phase }]);
  }

  step(id: StepId): StepProgress {
    return this.progress.steps.find((s) => s.id === id)!;
  }

  async run<T>(id: StepId, fn: () => Promise<T>, detail?: (t: T) => string): Promise<T> {
    // Pausing holds the migration between steps; a running step finishes first.
    await condition(() => !this.progress.paused);
    this.setPhase(PHASE_OF_STEP[id]);
    this.step(id).status = 'running';
    try {
      const out = await fn();
      this.step(id).status = 'done';
      if (detail) this.step(id).detail = detail(out);
      return out;
    } catch (err) {
      this.step(id).status = 'failed';
      throw err;
    }
  }
}
