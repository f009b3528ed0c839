/**
 * How the federation's queue becomes rounds: one protocol per round (the head proposal's), with
 * every queued proposal of that protocol behind it, in order, up to a number of entries. A
 * membership change runs alone, since it ends the run (new members, new epoch).
 */
import type { Protocol } from '../consensus/types';

export interface Queued {
  protocol: Protocol;
  /** Set for join/leave. */
  membership?: boolean;
  input: { entries: readonly unknown[] };
}

/** Takes the next round's proposals off the front of `queue` (which must not be empty). */
export function takeBatch<P extends Queued>(queue: P[], maxEntries: number): P[] {
  const head = queue.shift();
  if (!head) throw new Error('takeBatch needs a queued proposal; the queue is empty');
  const batch = [head];
  if (head.membership) return batch;
  let entries = head.input.entries.length;
  while (queue.length && queue[0]!.protocol === head.protocol && !queue[0]!.membership && entries + queue[0]!.input.entries.length <= maxEntries) {
    const p = queue.shift()!;
    entries += p.input.entries.length;
    batch.push(p);
  }
  return batch;
}
