/**
 * A discrete-event clock for tests: sleep() registers a timer, and runUntil() advances virtual
 * time from timer to timer, letting promises and streams settle in between. No wall-clock waits.
 */
import type { Clock } from '../../../agent/link/shaper';

export class FakeClock implements Clock {
  private t = 0;
  private timers: { at: number; seq: number; resolve: () => void }[] = [];
  private seq = 0;

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    if (!(ms > 0)) return Promise.resolve();
    return new Promise((resolve) => this.timers.push({ at: this.t + ms, seq: this.seq++, resolve }));
  }

  /** Advances virtual time until `work` settles; throws if it waits on nothing but never ends. */
  async runUntil<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    const done = work.finally(() => {
      settled = true;
    });
    done.catch(() => undefined);
    for (;;) {
      for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
      if (settled) return done;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift();
      if (!next) throw new Error(`FakeClock: work is pending at t=${this.t} ms but no timer is set (deadlock)`);
      this.t = next.at;
      next.resolve();
    }
  }
}
