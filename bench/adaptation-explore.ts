/**
 * `node --import tsx bench/adaptation-explore.ts RECORDS.jsonl`
 *
 * Session 8 of #17: further families of per-link adaptation, replayed on the records of
 * bench/adaptation-records.ts (every expert's prediction at every point, made with the model
 * trained without that point's dataset) and chosen by the eval's nested rule
 * (bench/adaptation-choice.ts: best worst-case improvement on the *other* datasets, then best
 * mean) over the union of the 621 screened settings and the families below. The families were
 * written down in full before any of their figures was seen, and scored once:
 *
 *   extra experts (computed from the trace's samples, as the agent's ring holds them):
 *     median-3, median-5 (median of the last 3 / 5 samples: a robust smoother for short noisy links),
 *     onnx*median-3 (geometric mean), onnx^.75*last-value^.25, onnx^.75*ewma-0.5^.25;
 *   E  exponentially weighted average forecaster (geometric mixture), abs-log loss capped at 1,
 *      over `core` or `core+` (core plus the five above), prior uniform or half on one default
 *      (onnx, onnx*last-value), eta in {1, 2, 5, 10, 20}, share in {0, 0.01, 0.05};
 *   F  follow the leader with a default over `core+`, every expert of it as default, loss abs-log
 *      or Welsch 0.06 / 0.12, margin {0.5, 1, 2, 3}, discount {1, 0.98};
 *   K  the default until k points are scored, then the leader (margin 0): core+ defaults, k in
 *      {5, 10, 20}, loss abs-log or Welsch 0.12;
 *   B  a per-link blend exponent: pred = onnx^b * other^(1-b), b learnt by projected online
 *      gradient descent on the abs-log loss, other in {last-value, ewma-0.5}, b0 in {0.5, 0.75, 1},
 *      step in {0.01, 0.03, 0.1}.
 *   R  (added after seeing E, F, K, B: none met the targets) the model's own recent residuals, without
 *      a retrain: pred = expert * exp(-lambda * median of its last k log residuals on this link),
 *      expert in {onnx, onnx*last-value}, k in {5, 10, 20}, lambda in {0.25, 0.5, 1}; used alone, and as
 *      the default of follow-the-leader over core (abs-log, margin 1, d 1) with the corrected expert added.
 *
 * Prints one JSON line per family (its nested figures if the rule were restricted to it: for
 * reading only) and one for the whole pool (the figure that counts).
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { CLASSICAL } from '../models/classical-estimators';
import { FLOOR_MBPS, HORIZON_S } from '../models/features';
import { EXPERTS } from '../models/link-adaptation';
import { screenCandidates } from './adaptation-screen';
import { median, round4, type WalkPoint } from './predictor-eval-walk';

interface RecPoint {
  index: number;
  timeMs: number;
  actual: number;
  experts: number[];
  baselines: Record<string, number>;
}
interface Rec {
  dataset: string;
  trace: string;
  times: number[];
  mbps: number[];
  points: RecPoint[];
}

const EXTRA = ['median-3', 'median-5', 'onnx*median-3', 'onnx.75*last-value', 'onnx.75*ewma-0.5'] as const;
const ALL = [...EXPERTS, ...EXTRA];
const idx = (n: string) => {
  const k = ALL.indexOf(n as (typeof ALL)[number]);
  if (k < 0) throw new Error(`unknown expert ${n}`);
  return k;
};
const CORE = ['onnx', 'last-value', 'ewma-0.5', 'onnx*last-value', 'onnx*ewma-0.5'];
const CORE_PLUS = [...CORE, ...EXTRA];

function medianLast(mbps: readonly number[], end: number, k: number): number {
  const v: number[] = [];
  for (let j = Math.max(0, end - k + 1); j <= end; j++) v.push(Math.max(mbps[j]!, FLOOR_MBPS));
  return median(v);
}

/** Per trace: per point, every expert of ALL (or null on the fallback path), and the actual. */
interface Pt {
  timeMs: number;
  actual: number;
  ex: number[] | null;
  fallback: number;
  baselines: Record<string, number>;
}

function load(file: string): Map<string, Pt[][]> {
  const out = new Map<string, Pt[][]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as Rec;
    const pts: Pt[] = r.points.map((p) => {
      const e = p.experts;
      const at = (n: string) => e[EXPERTS.indexOf(n as (typeof EXPERTS)[number])]!;
      const m3 = medianLast(r.mbps, p.index, 3);
      const ex =
        e.length === 0
          ? null
          : [
              ...e,
              m3,
              medianLast(r.mbps, p.index, 5),
              Math.sqrt(at('onnx') * m3),
              at('onnx') ** 0.75 * at('last-value') ** 0.25,
              at('onnx') ** 0.75 * at('ewma-0.5') ** 0.25,
            ];
      return { timeMs: p.timeMs, actual: p.actual, ex, fallback: p.baselines['harmonic-mean-5']!, baselines: p.baselines };
    });
    if (!out.has(r.dataset)) out.set(r.dataset, []);
    out.get(r.dataset)!.push(pts);
  }
  return out;
}

const absLog = (p: number, a: number) => Math.min(Math.abs(Math.log(Math.max(p, 1e-9) / Math.max(a, 1e-9))), 1);
const welsch = (s: number) => (p: number, a: number) => {
  const r = Math.log(Math.max(p, 1e-9) / Math.max(a, 1e-9));
  return 1 - Math.exp(-(r * r) / (2 * s * s));
};

/** An online rule on one link: predict from the experts, then learn from a scored point. */
interface Rule {
  predict(ex: readonly number[]): number;
  learn(ex: readonly number[], actual: number): void;
}
type RuleFactory = () => Rule;

function replay(traces: readonly Pt[][], make: RuleFactory): number[] {
  const out: number[] = [];
  for (const points of traces) {
    const rule = make();
    let next = 0;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      while (next < i && points[next]!.timeMs + HORIZON_S * 1000 <= p.timeMs) {
        const q = points[next]!;
        if (q.ex) rule.learn(q.ex, q.actual);
        next++;
      }
      out.push(p.ex ? rule.predict(p.ex) : p.fallback);
    }
  }
  return out;
}

function ewa(set: string[], prior: number[], eta: number, share: number): RuleFactory {
  const ks = set.map(idx);
  return () => {
    let w = [...prior];
    return {
      predict: (ex) => Math.exp(ks.reduce((s, k, i) => s + w[i]! * Math.log(Math.max(ex[k]!, 1e-9)), 0)),
      learn: (ex, a) => {
        const v = ks.map((k, i) => w[i]! * Math.exp(-eta * absLog(ex[k]!, a)));
        const t = v.reduce((x, y) => x + y, 0);
        w = v.map((x, i) => (1 - share) * (x / t) + share * prior[i]!);
      },
    };
  };
}

function ftl(set: string[], def: string, loss: (p: number, a: number) => number, margin: number, discount: number, after = 0): RuleFactory {
  const ks = set.map(idx);
  const d = idx(def);
  return () => {
    const L = new Map(ks.map((k) => [k, 0]));
    let n = 0;
    return {
      predict: (ex) => {
        if (n < after) return ex[d]!;
        let best = d;
        let bl = L.get(d)! - margin;
        for (const k of ks) {
          if (L.get(k)! < bl) {
            best = k;
            bl = L.get(k)!;
          }
        }
        return ex[best]!;
      },
      learn: (ex, a) => {
        for (const k of ks) L.set(k, discount * L.get(k)! + loss(ex[k]!, a));
        n++;
      },
    };
  };
}

function blend(other: string, b0: number, step: number): RuleFactory {
  const o = idx('onnx');
  const k = idx(other);
  return () => {
    let b = b0;
    const pred = (ex: readonly number[]) => Math.exp(b * Math.log(Math.max(ex[o]!, 1e-9)) + (1 - b) * Math.log(Math.max(ex[k]!, 1e-9)));
    return {
      predict: pred,
      learn: (ex, a) => {
        const r = Math.log(pred(ex) / a);
        const g = Math.sign(r) * (Math.log(Math.max(ex[o]!, 1e-9)) - Math.log(Math.max(ex[k]!, 1e-9)));
        b = Math.min(1, Math.max(0, b - step * g));
      },
    };
  };
}

/** An expert corrected by the median of its last k log residuals on this link (scored points only). */
function corrected(expert: string, k: number, lambda: number): { value: (ex: readonly number[], res: readonly number[]) => number } {
  const e = idx(expert);
  return { value: (ex, res) => (res.length === 0 ? ex[e]! : ex[e]! * Math.exp(-lambda * median(res.slice(-k)))) };
}

function residualRule(expert: string, k: number, lambda: number, withFtl: boolean): RuleFactory {
  const c = corrected(expert, k, lambda);
  const ks = CORE.map(idx);
  return () => {
    const res: number[] = [];
    const L = new Map<number, number>([...ks.map((j) => [j, 0] as [number, number]), [-1, 0]]);
    const value = (ex: readonly number[], j: number) => (j === -1 ? c.value(ex, res) : ex[j]!);
    return {
      predict: (ex) => {
        if (!withFtl) return c.value(ex, res);
        let best = -1;
        let bl = L.get(-1)! - 1;
        for (const j of ks) {
          if (L.get(j)! < bl) {
            best = j;
            bl = L.get(j)!;
          }
        }
        return value(ex, best);
      },
      learn: (ex, a) => {
        for (const j of [...ks, -1]) L.set(j, L.get(j)! + absLog(value(ex, j), a));
        res.push(Math.log(Math.max(ex[idx(expert)]!, 1e-9) / a));
        if (res.length > 20) res.shift();
      },
    };
  };
}

function families(): Record<string, Record<string, RuleFactory>> {
  const E: Record<string, RuleFactory> = {};
  for (const [setName, set] of Object.entries({ core: CORE, 'core+': CORE_PLUS })) {
    const priors: Record<string, number[]> = { uniform: set.map(() => 1 / set.length) };
    for (const def of ['onnx', 'onnx*last-value']) priors[`half-${def}`] = set.map((n) => (n === def ? 0.5 : 0.5 / (set.length - 1)));
    for (const [pn, prior] of Object.entries(priors)) {
      for (const eta of [1, 2, 5, 10, 20]) for (const share of [0, 0.01, 0.05]) E[`ewa-${setName}-${pn}-eta${eta}-s${share}`] = ewa(set, prior, eta, share);
    }
  }
  const losses = { abs: absLog, w06: welsch(0.06), w12: welsch(0.12) };
  const F: Record<string, RuleFactory> = {};
  for (const def of CORE_PLUS) {
    for (const [ln, loss] of Object.entries(losses)) {
      for (const m of [0.5, 1, 2, 3]) for (const d of [1, 0.98]) F[`ftl+-${def}-${ln}-m${m}-d${d}`] = ftl(CORE_PLUS, def, loss, m, d);
    }
  }
  const K: Record<string, RuleFactory> = {};
  for (const def of CORE_PLUS) {
    for (const [ln, loss] of Object.entries({ abs: absLog, w12: welsch(0.12) })) {
      for (const k of [5, 10, 20]) K[`switch-${def}-${ln}-k${k}`] = ftl(CORE_PLUS, def, loss, 0, 1, k);
    }
  }
  const B: Record<string, RuleFactory> = {};
  for (const other of ['last-value', 'ewma-0.5']) {
    for (const b0 of [0.5, 0.75, 1]) for (const step of [0.01, 0.03, 0.1]) B[`blend-${other}-b${b0}-step${step}`] = blend(other, b0, step);
  }
  const R: Record<string, RuleFactory> = {};
  for (const expert of ['onnx', 'onnx*last-value']) {
    for (const k of [5, 10, 20]) {
      for (const lambda of [0.25, 0.5, 1]) {
        R[`resid-${expert}-k${k}-l${lambda}`] = residualRule(expert, k, lambda, false);
        R[`resid-ftl-${expert}-k${k}-l${lambda}`] = residualRule(expert, k, lambda, true);
      }
    }
  }
  return { E, F, K, B, R };
}

type Table = Map<string, Map<string, number>>; // dataset -> candidate -> improvement

function nested(table: Table, datasets: string[], candidates: string[]) {
  const pick = (on: string[]) => {
    let best = '';
    let key: [number, number] = [-Infinity, -Infinity];
    for (const c of candidates) {
      const v = on.map((d) => table.get(d)!.get(c)!);
      const k: [number, number] = [Math.min(...v), v.reduce((a, b) => a + b, 0) / v.length];
      if (k[0] > key[0] || (k[0] === key[0] && k[1] > key[1])) {
        best = c;
        key = k;
      }
    }
    return best;
  };
  return {
    perDataset: Object.fromEntries(datasets.map((d) => {
      const c = pick(datasets.filter((o) => o !== d));
      return [d, { candidate: c, improvement: round4(table.get(d)!.get(c)!) }];
    })),
    onAll: pick(datasets),
  };
}

function main(file: string): void {
  const data = load(file);
  const cacheFile = `${file}.table.json`;
  // Figures of candidates already replayed on these very records (same size and mtime): a rerun
  // after adding a family replays only the new candidates.
  const st = statSync(file);
  const stamp = `${st.size}:${st.mtimeMs}`;
  const cached = existsSync(cacheFile) ? (JSON.parse(readFileSync(cacheFile, 'utf8')) as { stamp?: string; table?: Record<string, Record<string, number>> }) : {};
  const cache = cached.stamp === stamp ? (cached.table ?? {}) : {};
  const datasets = [...data.keys()];
  const table: Table = new Map(datasets.map((d) => [d, new Map()]));
  const fams = families();
  for (const d of datasets) {
    const traces = data.get(d)!;
    const flat = traces.flat();
    const ape = (pred: readonly number[]) => median(flat.map((p, i) => Math.abs(pred[i]! - p.actual) / p.actual));
    const best = Math.min(...CLASSICAL.map((m) => ape(flat.map((p) => p.baselines[m]!))));
    for (const fam of Object.values(fams)) {
      for (const [name, make] of Object.entries(fam)) table.get(d)!.set(name, cache[d]?.[name] ?? 1 - ape(replay(traces, make)) / best);
    }
    // The 621 screened settings, replayed by the eval's own screen on the same records.
    const walkPoints = traces.map((t) => t.map((p) => ({ timeMs: p.timeMs, actual: p.actual, experts: p.ex ? p.ex.slice(0, EXPERTS.length) : [], adaptive: p.fallback, baselines: p.baselines }) as unknown as WalkPoint));
    for (const [c, v] of screenCandidates(walkPoints)) table.get(d)!.set(c, v);
  }
  writeFileSync(cacheFile, JSON.stringify({ stamp, table: Object.fromEntries([...table].map(([d, m]) => [d, Object.fromEntries(m)])) }));
  const screened = [...table.get(datasets[0]!)!.keys()].filter((c) => !Object.values(fams).some((f) => c in f));
  const groups: Record<string, string[]> = { screened621: screened, ...Object.fromEntries(Object.entries(fams).map(([k, f]) => [k, Object.keys(f)])) };
  for (const [g, cands] of Object.entries(groups)) {
    const hindsight = Object.fromEntries(datasets.map((d) => [d, round4(Math.max(...cands.map((c) => table.get(d)!.get(c)!)))]));
    // In hindsight: the best figure on each dataset among the candidates that are >= 0 on the other three.
    const bestIfOthersNonNeg = Object.fromEntries(
      datasets.map((d) => {
        const ok = cands.filter((c) => datasets.every((o) => o === d || table.get(o)!.get(c)! >= 0));
        return [d, ok.length === 0 ? null : round4(Math.max(...ok.map((c) => table.get(d)!.get(c)!)))];
      }),
    );
    const allNonNeg = cands.filter((c) => datasets.every((d) => table.get(d)!.get(c)! >= 0));
    console.log(JSON.stringify({ kind: 'explore-family', family: g, size: cands.length, nested: nested(table, datasets, cands), bestInHindsight: hindsight, bestIfOthersNonNeg, nonNegativeEverywhere: allNonNeg.length }));
  }
  const pool = Object.values(groups).flat();
  console.log(JSON.stringify({ kind: 'explore-pool', size: pool.length, nested: nested(table, datasets, pool) }));
  const shipped = 'ftl-core-onnx*last-value-abs-m1-d1';
  console.log(JSON.stringify({ kind: 'explore-check', candidate: shipped, improvements: Object.fromEntries(datasets.map((d) => [d, round4(table.get(d)!.get(shipped)!)])) }));
}

const recordsFile = process.argv[2] ?? 'tmp/adaptation-records.jsonl';
if (!existsSync(recordsFile)) {
  console.error(`no records file '${recordsFile}': write it first with node --import tsx bench/adaptation-records.ts ${recordsFile}`);
  process.exit(1);
}
main(recordsFile);
