/**
 * Where each byte of a new volume can come from when the target still holds an earlier version of
 * it (the basis: a file it assembled itself, with a known manifest): ranges equal to a basis range
 * are copied from the basis file, the rest are chunks read from the chunk store. Pure.
 *
 * A chunk of the new manifest whose hash the basis manifest also lists has the same bytes (the hash
 * names them), so it can be copied from wherever the basis has it. Consecutive such chunks whose
 * basis positions are also consecutive merge into one run; a run with from === offset is already in
 * place in a copy of the basis file.
 */
import type { ChunkRef } from './manifest';

/** Bytes [offset, offset + length) of the new volume equal bytes [from, from + length) of the basis. */
export interface BasisRun {
  offset: number;
  length: number;
  from: number;
}

export interface AssemblyPlan {
  /** In offset order. */
  runs: BasisRun[];
  /** Chunks the basis does not have, in offset order. */
  fromStore: ChunkRef[];
  /** Bytes of runs already in place in a copy of the basis (from === offset). */
  inPlaceBytes: number;
  /** Bytes of runs that must be moved within the file (from !== offset). */
  movedBytes: number;
  storeBytes: number;
}

export function planAssembly(target: readonly ChunkRef[], basis: readonly ChunkRef[]): AssemblyPlan {
  const at = new Map<string, number>();
  // Where each basis chunk is, to prefer one position of a repeated hash over another (below).
  const basisOffsets = new Map<number, string>();
  for (const c of basis) {
    if (!at.has(c.hash)) at.set(c.hash, c.offset);
    basisOffsets.set(c.offset, c.hash);
  }
  const runs: BasisRun[] = [];
  const fromStore: ChunkRef[] = [];
  for (const c of target) {
    // For a hash the basis has in several places (e.g. runs of zeros), prefer, in turn: the place
    // that continues the current run (an insertion shifts everything after it: one run, not one per
    // repeated chunk), the chunk's own offset (already in place), its first occurrence.
    const prev = runs[runs.length - 1];
    const cont = prev && prev.offset + prev.length === c.offset ? prev.from + prev.length : undefined;
    const from = cont !== undefined && basisOffsets.get(cont) === c.hash ? cont : basisOffsets.get(c.offset) === c.hash ? c.offset : at.get(c.hash);
    if (from === undefined) {
      fromStore.push(c);
      continue;
    }
    const last = runs[runs.length - 1];
    if (last && last.offset + last.length === c.offset && last.from + last.length === from) last.length += c.length;
    else runs.push({ offset: c.offset, length: c.length, from });
  }
  let inPlaceBytes = 0;
  let movedBytes = 0;
  for (const r of runs) {
    if (r.from === r.offset) inPlaceBytes += r.length;
    else movedBytes += r.length;
  }
  return { runs, fromStore, inPlaceBytes, movedBytes, storeBytes: fromStore.reduce((a, c) => a + c.length, 0) };
}

/**
 * An order in which the moved runs (from !== offset) can be copied within one file, in place,
 * so that no run reads bytes an earlier run in the order has already overwritten: runs shifted
 * towards the end first, from the last one back; then runs shifted towards the start, from the
 * first one on. (Inside one run, the caller copies backwards for a shift towards the end and
 * forwards otherwise.) Undefined when that order does not work (runs that trade places) or there
 * are more than `maxRuns`: the caller then writes a new file instead.
 */
export function orderMovesInPlace(runs: readonly BasisRun[], maxRuns = 1024): BasisRun[] | undefined {
  const moves = runs.filter((r) => r.from !== r.offset);
  if (moves.length > maxRuns) return undefined;
  const order = [...moves.filter((r) => r.from < r.offset).sort((a, b) => b.offset - a.offset), ...moves.filter((r) => r.from > r.offset).sort((a, b) => a.offset - b.offset)];
  const written: { start: number; end: number }[] = [];
  for (const r of order) {
    for (const w of written) if (r.from < w.end && w.start < r.from + r.length) return undefined;
    written.push({ start: r.offset, end: r.offset + r.length });
  }
  return order;
}
