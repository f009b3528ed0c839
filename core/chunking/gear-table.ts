/**
 * The gear table of FASTCDC_V1: 256 pseudo-random 32-bit words, one per byte value.
 *
 * Generated, not pasted, so anyone can re-derive it: SplitMix64 (Steele, Lea and Flood, "Fast
 * splittable pseudorandom number generators", OOPSLA 2014; the constants are those of
 * java.util.SplittableRandom) seeded with GEAR_SEED, taking the high 32 bits of each output.
 * The table is part of the algorithm version: `test/unit/delta/gear-table.test.ts` pins its digest,
 * because a different table moves every published cut point.
 *
 * Pure: no Node imports, BigInt only at module load (256 steps).
 */

/** ASCII "fedflow1" read as a big-endian 64-bit integer. */
export const GEAR_SEED = 0x666564666c6f7731n;

const MASK64 = (1n << 64n) - 1n;

/** One SplitMix64 step: returns [next state, output]. */
export function splitMix64(state: bigint): [bigint, bigint] {
  const s = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  z = z ^ (z >> 31n);
  return [s, z];
}

function generateGear(seed: bigint): Uint32Array {
  const table = new Uint32Array(256);
  let state = seed;
  for (let i = 0; i < 256; i++) {
    const [next, out] = splitMix64(state);
    state = next;
    // The high half: SplitMix64's upper bits are its best-mixed ones.
    table[i] = Number(out >> 32n);
  }
  return table;
}

/** GEAR[b]: the word added to the rolling hash when byte b enters. */
export const GEAR: Uint32Array = generateGear(GEAR_SEED);

/**
 * GEAR_LS[b] = GEAR[b] << 1 (mod 2^32): lets the hot loop roll two bytes per step, the
 * "rolling two bytes each time" optimisation of FastCDC 2020 (Xia et al., IEEE TPDS 2020, §3.3).
 */
export const GEAR_LS: Uint32Array = GEAR.map((g) => (g << 1) >>> 0);
