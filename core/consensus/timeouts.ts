/**
 * Round timeouts in logical ticks, scaled by the predicted round-trip time of the links a round
 * uses: a fixed timeout either fires too early on a long link (needless retries) or waits too
 * long on a short one. The core never reads a clock; callers convert ticks to durations.
 */

export interface TimeoutInput {
  /** Ticks allowed regardless of the links: processing, fsync. ≥ 0. */
  baseTicks: number;
  /** Round trips a round needs: 1 for a CFT append, 3 for PBFT's three phases. ≥ 0. */
  k: number;
  /** Predicted RTT in ticks of each link from the leader to each site involved. */
  rttTicks: readonly number[];
  /**
   * Acknowledgements the round waits for. The round finishes when the quorum-th fastest site
   * answers, so its RTT (not the slowest site's) bounds the wait. Omit to wait for every link.
   */
  quorum?: number;
}

/** baseTicks + ceil(k × rtt), where rtt is the quorum-th smallest predicted RTT. */
export function roundTimeoutTicks(input: TimeoutInput): number {
  const { baseTicks, k, rttTicks } = input;
  if (!(Number.isFinite(baseTicks) && baseTicks >= 0)) throw new Error(`baseTicks must be a finite number ≥ 0; got ${baseTicks}`);
  if (!(Number.isFinite(k) && k >= 0)) throw new Error(`k must be a finite number ≥ 0; got ${k}`);
  if (rttTicks.length === 0) throw new Error('rttTicks must list the predicted RTT of at least one link; got none');
  rttTicks.forEach((r, i) => {
    if (!(Number.isFinite(r) && r >= 0)) throw new Error(`rttTicks[${i}] must be a finite number ≥ 0; got ${r}`);
  });
  const quorum = input.quorum ?? rttTicks.length;
  if (!Number.isSafeInteger(quorum) || quorum < 1 || quorum > rttTicks.length) {
    throw new Error(`quorum must be a whole number from 1 to ${rttTicks.length} (the links given); got ${quorum}`);
  }
  const sorted = [...rttTicks].sort((a, b) => a - b);
  return Math.ceil(baseTicks + k * (sorted[quorum - 1] as number));
}
