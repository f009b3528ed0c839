"""Scale-free features for the throughput predictor.

This file and models/features.ts must compute the same numbers: the model is
trained on these features in Python and served on the TypeScript ones. The
training script writes models/feature-fixture.json and a unit test checks the
TypeScript implementation against it, so change both files together and
retrain (`bash models/train.sh`).

Every throughput statistic enters as log(stat / ref), where ref is the last
sample (clamped). On these traces the last sample is the strongest simple
predictor (see docs/predictor.md), so the model learns a correction to it:
its target is log(mean over the next HORIZON_S / last).

A link at 3 Mbit/s and one at 30 Gbit/s
with the same shape give the same features, which is what lets a model
trained mostly on access-link traces say something about datacenter links.
"""

from __future__ import annotations

import math
from typing import Sequence

# Samples the features look at. The agent's ring buffer keeps at least this many.
WINDOW = 32
# Values below this (Mbit/s) are clamped before taking logs: traces hold a few
# zero samples (outages) and log(0) has no meaning. 1 kbit/s is far below any
# link fedflow would move a volume over, so the clamp never hides a real level.
FLOOR_MBPS = 1e-3
# Prediction horizon in seconds of trace time; the target is the mean over it.
HORIZON_S = 5.0
# Samples needed before we predict at all (the hm5 feature and baseline need 5).
MIN_SAMPLES = 5
EWMA_ALPHAS = (0.5, 0.2, 0.05)
TIME_WINDOWS_S = (5.0, 15.0, 60.0)

# The six last features since session 9: the classical estimators' recent errors on the link.
RESIDUAL_NAMES = (
    "res_abs_last",
    "res_abs_ewma50",
    "res_abs_hm5",
    "log_res_ewma50_over_last",
    "res_signed_last",
    "res_points",
)
FEATURE_NAMES = (
    "log_hm5_ref",
    "log_prev1_ref",
    "log_prev2_ref",
    "log_mean3_ref",
    "log_mean10_ref",
    "log_mean32_ref",
    "log_hm10_ref",
    "log_hm32_ref",
    "log_ewma50_ref",
    "log_ewma20_ref",
    "log_ewma05_ref",
    "log_median10_ref",
    "log_min10_ref",
    "log_max10_ref",
    "std_log10",
    "std_log32",
    "slope_log10_x_horizon",
    "log_tmean5s_ref",
    "log_tmean15s_ref",
    "log_tmean60s_ref",
    "log_median_dt10",
    "fill_fraction",
    "dip_fraction10",
) + RESIDUAL_NAMES
# Points of the window whose outcome (mean of the next HORIZON_S) is already known: the last
# RESIDUAL_POINTS of them give the classical estimators' recent errors on this link.
RESIDUAL_POINTS = 8


def _mean(v: Sequence[float]) -> float:
    return sum(v) / len(v)


def _hmean(v: Sequence[float]) -> float:
    return len(v) / sum(1.0 / a for a in v)


def _median(v: Sequence[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 == 1 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _std(v: Sequence[float]) -> float:
    m = _mean(v)
    return math.sqrt(sum((a - m) ** 2 for a in v) / len(v))


def reference(values: Sequence[float]) -> float:
    """The last (clamped) sample: the level features and the target are relative to."""
    return max(values[-1], FLOOR_MBPS)


def features(times: Sequence[float], values: Sequence[float]) -> list[float]:
    """Features from the samples up to now (oldest first). Needs >= 1 sample."""
    if len(times) != len(values) or len(values) == 0:
        raise ValueError(f"need matching non-empty times/values, got {len(times)}/{len(values)}")
    t = list(times[-WINDOW:])
    x = [max(a, FLOOR_MBPS) for a in values[-WINDOW:]]
    n = len(x)
    ref = reference(x)
    lr = lambda a: math.log(a / ref)  # noqa: E731
    last = x[-1]
    prev1 = x[-2] if n >= 2 else last
    prev2 = x[-3] if n >= 3 else prev1
    x3, x10 = x[-3:], x[-10:]
    logs = [math.log(a) for a in x]
    ewmas = []
    for alpha in EWMA_ALPHAS:
        e = x[0]
        for a in x[1:]:
            e = alpha * a + (1 - alpha) * e
        ewmas.append(e)
    # Least-squares slope of log throughput against time over the last 10
    # samples, times the horizon: "how much the level would move by the end".
    t10, l10 = t[-10:], logs[-10:]
    tm, lm = _mean(t10), _mean(l10)
    den = sum((a - tm) ** 2 for a in t10)
    slope = sum((a - tm) * (b - lm) for a, b in zip(t10, l10)) / den if den > 0 else 0.0
    now = t[-1]
    tmeans = []
    for w in TIME_WINDOWS_S:
        inside = [a for a, ts in zip(x, t) if ts >= now - w]
        tmeans.append(_mean(inside))
    tail = t[-10:]
    dts = [b - a for a, b in zip(tail[:-1], tail[1:])]
    mdt = _median(dts) if dts else 1.0
    return [
        lr(_hmean(x[-MIN_SAMPLES:])),
        lr(prev1),
        lr(prev2),
        lr(_mean(x3)),
        lr(_mean(x10)),
        lr(_mean(x)),
        lr(_hmean(x10)),
        lr(_hmean(x)),
        lr(ewmas[0]),
        lr(ewmas[1]),
        lr(ewmas[2]),
        lr(_median(x10)),
        lr(min(x10)),
        lr(max(x10)),
        _std(logs[-10:]),
        _std(logs),
        slope * HORIZON_S,
        lr(tmeans[0]),
        lr(tmeans[1]),
        lr(tmeans[2]),
        math.log(max(mdt, 1e-3)),
        n / WINDOW,
        sum(1 for a in x10 if a < 0.5 * ref) / len(x10),
    ] + _residuals(t, x)


def _residuals(t: Sequence[float], x: Sequence[float]) -> list[float]:
    """The last value's, the EWMA 0.5's and the harmonic mean of 5's recent errors on this link:
    median |log(outcome / estimate)| over the last RESIDUAL_POINTS points of the window whose
    HORIZON_S outcome is complete, the log ratio of the EWMA's to the last value's, the last
    value's median signed error, and the share of RESIDUAL_POINTS there were."""
    n, now = len(x), t[-1]
    e, ew = x[0], [x[0]]
    for a in x[1:]:
        e = 0.5 * a + 0.5 * e
        ew.append(e)
    done = [j for j in range(MIN_SAMPLES - 1, n) if t[j] + HORIZON_S <= now][-RESIDUAL_POINTS:]
    rl, re_, rh, sl = [], [], [], []
    for j in done:
        inside = [x[i] for i in range(j + 1, n) if t[i] <= t[j] + HORIZON_S]
        if not inside:
            continue
        out = sum(inside) / len(inside)
        hm = MIN_SAMPLES / sum(1.0 / a for a in x[j + 1 - MIN_SAMPLES : j + 1])
        d = math.log(out / x[j])
        sl.append(d)
        rl.append(abs(d))
        re_.append(abs(math.log(out / ew[j])))
        rh.append(abs(math.log(out / hm)))
    if not rl:
        return [0.0] * len(RESIDUAL_NAMES)
    ml, me = _median(rl), _median(re_)
    return [ml, me, _median(rh), math.log((me + 1e-3) / (ml + 1e-3)), _median(sl), len(rl) / RESIDUAL_POINTS]


def target_mean(times: Sequence[float], values: Sequence[float], i: int) -> float | None:
    """Mean throughput over (t_i, t_i + HORIZON_S], or None if the trace ends before that."""
    now = times[i]
    if times[-1] < now + HORIZON_S:
        return None
    inside = []
    for ts, v in zip(times[i + 1 :], values[i + 1 :]):
        if ts > now + HORIZON_S:
            break
        inside.append(v)
    # A window of all-zero samples has no percentage error to speak of; skip it.
    if not inside or _mean(inside) <= 0:
        return None
    return _mean(inside)
