/**
 * Cooperative time slices for long synchronous work on an agent's event loop. An agent's loop is
 * shared: its chunk endpoint, its pulls, and the workload fronts it runs (on one machine, every
 * site's) all wait while a patch compares or stages a volume. Such a loop asks `due()` between
 * small steps and, once a slice is used up, `pause()`s for one turn of the loop (setImmediate:
 * after pending I/O), so a front forwards a client's request within a slice instead of after the
 * whole step. A 1 GiB pre-copy round's patch held the loop for 300-400 ms in one piece before.
 */
export const SLICE_MS = 20;

export class LoopSlices {
  private since = performance.now();
  constructor(private readonly sliceMs = SLICE_MS) {}

  /** Whether this slice is used up. */
  due(): boolean {
    return performance.now() - this.since >= this.sliceMs;
  }

  /** One turn of the event loop; the next slice starts after it. */
  async pause(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    this.since = performance.now();
  }
}
