/** The emulated links of a federation config, as one shaper per configured ordered site pair. */
import type { LinkShape } from '../../core/federation-config';
import { LinkShaperSet, UNSHAPED } from './shaper';

export function shapersFromConfig(links: LinkShape[], seed?: number): LinkShaperSet {
  const set = new LinkShaperSet({ seed });
  for (const l of links) {
    set.set(l.from, l.to, {
      ...UNSHAPED,
      rateMbps: l.rateMbps ?? Number.POSITIVE_INFINITY,
      // A burst of 64 KiB keeps a shaped link smooth at every rate used here.
      burstBytes: 64 << 10,
      delayMs: l.delayMs,
      jitterMs: l.jitterMs,
      loss: l.loss,
    });
  }
  return set;
}
