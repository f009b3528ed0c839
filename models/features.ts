/**
 * Scale-free features for the throughput predictor: the TypeScript twin of
 * models/features.py. The model was trained on the Python numbers and is
 * served on these, so the two must agree; test/unit/predictor/features.test.ts
 * checks them against models/feature-fixture.json, which models/train.py writes.
 * Change both files together and retrain (`bash models/train.sh`).
 *
 * Every throughput statistic enters as log(stat / last): a 3 Mbit/s access
 * link and a 30 Gbit/s fabric with the same shape give the same features.
 */

/** Samples the features look at. */
export const WINDOW = 32;
/** Clamp (Mbit/s) before logs: traces hold a few zero samples. */
export const FLOOR_MBPS = 1e-3;
/** Prediction horizon, seconds of trace time. */
export const HORIZON_S = 5.0;
/** Samples needed before the model is used. */
export const MIN_SAMPLES = 5;
const EWMA_ALPHAS = [0.5, 0.2, 0.05] as const;
const TIME_WINDOWS_S = [5.0, 15.0, 60.0] as const;

export const FEATURE_NAMES = [
  'log_hm5_ref',
  'log_prev1_ref',
  'log_prev2_ref',
  'log_mean3_ref',
  'log_mean10_ref',
  'log_mean32_ref',
  'log_hm10_ref',
  'log_hm32_ref',
  'log_ewma50_ref',
  'log_ewma20_ref',
  'log_ewma05_ref',
  'log_median10_ref',
  'log_min10_ref',
  'log_max10_ref',
  'std_log10',
  'std_log32',
  'slope_log10_x_horizon',
  'log_tmean5s_ref',
  'log_tmean15s_ref',
  'log_tmean60s_ref',
  'log_median_dt10',
  'fill_fraction',
  'dip_fraction10',
  'res_abs_last',
  'res_abs_ewma50',
  'res_abs_hm5',
  'log_res_ewma50_over_last',
  'res_signed_last',
  'res_points',
] as const;
/**
 * Points of the window whose outcome (mean of the next HORIZON_S) is already known: the last
 * RESIDUAL_POINTS of them give the classical estimators' recent errors on this link.
 */
const RESIDUAL_POINTS = 8;

// Sums run left to right like Python's sum(), so results match to the last bit
// or close to it; the parity test allows 1e-9.
function mean(v: readonly number[]): number {
  let s = 0;
  for (const a of v) s += a;
  return s / v.length;
}

function hmean(v: readonly number[]): number {
  let s = 0;
  for (const a of v) s += 1 / a;
  return v.length / s;
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 === 1 ? s[(n - 1) / 2]! : 0.5 * (s[n / 2 - 1]! + s[n / 2]!);
}

function std(v: readonly number[]): number {
  const m = mean(v);
  let s = 0;
  for (const a of v) s += (a - m) ** 2;
  return Math.sqrt(s / v.length);
}

/** The last sample, clamped: the level features and the model's target are relative to. */
export function reference(values: readonly number[]): number {
  return Math.max(values[values.length - 1] ?? 0, FLOOR_MBPS);
}

/** Features from the samples up to now (oldest first). Needs at least one sample. */
export function features(times: readonly number[], values: readonly number[]): number[] {
  if (times.length !== values.length || values.length === 0) {
    throw new RangeError(`need matching non-empty times/values, got ${times.length}/${values.length}`);
  }
  const t = times.slice(-WINDOW);
  const x = values.slice(-WINDOW).map((a) => Math.max(a, FLOOR_MBPS));
  const n = x.length;
  const ref = reference(x);
  const lr = (a: number) => Math.log(a / ref);
  const last = x[n - 1]!;
  const prev1 = n >= 2 ? x[n - 2]! : last;
  const prev2 = n >= 3 ? x[n - 3]! : prev1;
  const x3 = x.slice(-3);
  const x10 = x.slice(-10);
  const logs = x.map(Math.log);
  const ewmas = EWMA_ALPHAS.map((alpha) => {
    let e = x[0]!;
    for (let i = 1; i < n; i++) e = alpha * x[i]! + (1 - alpha) * e;
    return e;
  });
  // Least-squares slope of log throughput against time over the last 10
  // samples, times the horizon: how far the level would move by the end.
  const t10 = t.slice(-10);
  const l10 = logs.slice(-10);
  const tm = mean(t10);
  const lm = mean(l10);
  let den = 0;
  let num = 0;
  for (let i = 0; i < t10.length; i++) den += (t10[i]! - tm) ** 2;
  for (let i = 0; i < t10.length; i++) num += (t10[i]! - tm) * (l10[i]! - lm);
  const slope = den > 0 ? num / den : 0;
  const now = t[n - 1]!;
  const tmeans = TIME_WINDOWS_S.map((w) => mean(x.filter((_, i) => t[i]! >= now - w)));
  const dts: number[] = [];
  if (n >= 2) {
    const tail = t.slice(-10);
    for (let i = 1; i < tail.length; i++) dts.push(tail[i]! - tail[i - 1]!);
  }
  const mdt = dts.length > 0 ? median(dts) : 1.0;
  let dips = 0;
  for (const a of x10) if (a < 0.5 * ref) dips++;
  return [
    lr(hmean(x.slice(-MIN_SAMPLES))),
    lr(prev1),
    lr(prev2),
    lr(mean(x3)),
    lr(mean(x10)),
    lr(mean(x)),
    lr(hmean(x10)),
    lr(hmean(x)),
    lr(ewmas[0]!),
    lr(ewmas[1]!),
    lr(ewmas[2]!),
    lr(median(x10)),
    lr(Math.min(...x10)),
    lr(Math.max(...x10)),
    std(logs.slice(-10)),
    std(logs),
    slope * HORIZON_S,
    lr(tmeans[0]!),
    lr(tmeans[1]!),
    lr(tmeans[2]!),
    Math.log(Math.max(mdt, 1e-3)),
    n / WINDOW,
    dips / x10.length,
    ...residuals(t, x),
  ];
}

/**
 * The last value's, the EWMA 0.5's and the harmonic mean of 5's recent errors on this link:
 * median |log(outcome / estimate)| over the last RESIDUAL_POINTS points of the window whose
 * HORIZON_S outcome is complete, the log ratio of the EWMA's to the last value's, the last value's
 * median signed error, and the share of RESIDUAL_POINTS there were. `x` is already clamped.
 */
function residuals(t: readonly number[], x: readonly number[]): number[] {
  const n = x.length;
  const now = t[n - 1]!;
  const ew: number[] = [x[0]!];
  for (let i = 1; i < n; i++) ew.push(0.5 * x[i]! + 0.5 * ew[i - 1]!);
  const done: number[] = [];
  for (let j = MIN_SAMPLES - 1; j < n; j++) if (t[j]! + HORIZON_S <= now) done.push(j);
  const rl: number[] = [];
  const re: number[] = [];
  const rh: number[] = [];
  const sl: number[] = [];
  for (const j of done.slice(-RESIDUAL_POINTS)) {
    let s = 0;
    let k = 0;
    for (let i = j + 1; i < n; i++) {
      if (t[i]! <= t[j]! + HORIZON_S) {
        s += x[i]!;
        k++;
      }
    }
    if (k === 0) continue;
    const out = s / k;
    let inv = 0;
    for (let i = j + 1 - MIN_SAMPLES; i <= j; i++) inv += 1 / x[i]!;
    const hm = MIN_SAMPLES / inv;
    const d = Math.log(out / x[j]!);
    sl.push(d);
    rl.push(Math.abs(d));
    re.push(Math.abs(Math.log(out / ew[j]!)));
    rh.push(Math.abs(Math.log(out / hm)));
  }
  if (rl.length === 0) return [0, 0, 0, 0, 0, 0];
  const ml = median(rl);
  const me = median(re);
  return [ml, me, median(rh), Math.log((me + 1e-3) / (ml + 1e-3)), median(sl), rl.length / RESIDUAL_POINTS];
}

/**
 * Mean throughput over (t_i, t_i + HORIZON_S], or null when the trace ends
 * before the window does or the window is all zeros (no percentage error).
 * Same definition as target_mean in models/features.py.
 */
export function targetMean(times: readonly number[], values: readonly number[], i: number): number | null {
  const now = times[i]!;
  if (times[times.length - 1]! < now + HORIZON_S) return null;
  let s = 0;
  let k = 0;
  for (let j = i + 1; j < times.length && times[j]! <= now + HORIZON_S; j++) {
    s += values[j]!;
    k++;
  }
  if (k === 0 || s / k <= 0) return null;
  return s / k;
}
