/**
 * A deliberately plain FASTCDC_V1 reference for tests: one byte per step, unsigned math, the rule
 * exactly as written in core/chunking/fastcdc.ts's header. The fast finder must agree with it.
 */
import { GEAR } from '../../../core/chunking/gear-table';
import { ChunkerParams, NORMALIZATION, WARMUP_BYTES } from '../../../core/chunking/params';

export function referenceCuts(buf: Uint8Array, p: ChunkerParams): { offset: number; length: number }[] {
  const bits = Math.log2(p.avgSize);
  const mask = (k: number) => (2 ** k - 1) * 2 ** (31 - k);
  const maskS = mask(bits + NORMALIZATION);
  const maskL = mask(bits - NORMALIZATION);
  const cuts: { offset: number; length: number }[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(buf.length, start + p.maxSize);
    if (buf.length - start > p.minSize) {
      let h = 0;
      for (let i = start + p.minSize - WARMUP_BYTES; i < end; i++) {
        h = (h * 2 + GEAR[buf[i]!]!) % 2 ** 32;
        if (i < start + p.minSize - 1) continue;
        const m = i < start + p.avgSize ? maskS : maskL;
        // (h & m) for unsigned values above 2^31: compare through BigInt to stay obviously exact.
        if ((BigInt(h) & BigInt(m)) === 0n) {
          end = i + 1;
          break;
        }
      }
    } else {
      end = buf.length;
    }
    cuts.push({ offset: start, length: end - start });
    start = end;
  }
  return cuts;
}
