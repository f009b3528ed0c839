/**
 * A saga is a stack of compensations. Each is pushed once its step has made something to undo
 * (a few are pushed just before their step, where the step may act before it answers; the
 * caller says why at that place), and on failure they run in reverse.
 */
import { CancellationScope, log } from '@temporalio/workflow';

export interface CompensationReport<Step extends string> {
  compensated(step: Step): void;
  failed(step: Step, err: unknown): void;
}

export class Saga<Step extends string> {
  private readonly stack: { step: Step; undo: () => Promise<void> }[] = [];

  /** `step` names the step whose work `undo` takes back, for the progress display. */
  push(step: Step, undo: () => Promise<void>): void {
    this.stack.push({ step, undo });
  }

  /**
   * Runs every compensation, last pushed first, out of reach of the run's cancellation (a cancel
   * is often why they run). The caller then rethrows the original error.
   */
  async compensate(report: CompensationReport<Step>): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const c of [...this.stack].reverse()) {
        try {
          await c.undo();
          report.compensated(c.step);
        } catch (err) {
          // A compensation that fails is logged and shown, and the rest still run; the original error wins.
          log.error('compensation failed', { step: c.step, error: String(err) });
          report.failed(c.step, err);
        }
      }
    });
  }
}
