"""Experiments behind "is improvementVsBestBaseline >= 0.20 reachable?" (docs/predictor.md).

    .venv/models/bin/python models/experiments.py [autocorr] [ceiling] [ceiling-raw] [gated] [sigma] [selection]   (default: all)

Diagnostics only: nothing here is used by models/train.py or shipped. Prints
one JSON line per figure. Single-threaded (OMP_NUM_THREADS=1 is set below);
about 12 minutes for the first four on one shared core, and as long again for
sigma.

- autocorr: per dataset, the Spearman correlation between consecutive
  log-throughput changes (0 = the log series moves like a random walk, where
  the last sample is the best guess of the next one; < 0 = spikes revert,
  which is what a model can exploit) and the last value's medianApe.
- ceiling: an *in-domain* upper bound. Boosted trees trained on two thirds of
  a dataset's traces (3-fold by trace) and scored on the rest, with a rich
  feature set (more than the shipped model's: medians, time-window medians,
  last sample spacings, time since the last level change, ...) and several
  losses. This trains on the held-out datasets, so it is never a model
  candidate: it answers "how much could *any* model of this kind gain on
  these traces if it had seen them?".
- ceiling-raw: the same with the raw history added (log ratio of each of the
  last 23 samples to the last one, and each sample spacing), in case the
  hand-made features miss something.
- gated: the one variant that beat the shipped recipe on every column of the
  training-data validation (by-trace split and leave-one-source-out): two
  point models chosen by the median sample spacing of the history (dense
  < 2.5 s: Welsch sigma 0.2; sparse: Welsch sigma 0.06, as shipped). Chosen on
  validation only; then scored once on the held-out datasets.
- sigma: the shipped recipe's one knob, the Welsch width, from 0.06 to 0.6,
  on the training split only: by-trace validation against leave-one-source-out
  (docs/predictor.md, "Third look").
- selection: for each held-out trace, the baseline that did best on it in
  hindsight: how much a predictor that follows the best baseline per link
  could hope for (evidence, not a bound: see docs/predictor.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dataset import default_traces_dir, read_trace, trace_files  # noqa: E402
import synthetic  # noqa: E402

TRACES = default_traces_dir(HERE.parent)
HORIZON_S = 5.0
K = 32
TREE = dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=50,
            l2_regularization=1.0, random_state=0)
GATE_S = 2.5


def out(**kw):
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in kw.items()}), flush=True)


def load(d):
    res = []
    for p in trace_files(TRACES / d):
        t, v, _ = read_trace(p)
        res.append((p.name, np.asarray(t), np.asarray(v)))
    return res


def targets(t, v, counts=False):
    """Same task as bench/predictor-eval.ts: mean of the samples in (t_i, t_i + 5 s]."""
    y = np.full(len(t), np.nan)
    c = np.zeros(len(t), int)
    cs = np.r_[0, np.cumsum(v)]
    for i in range(4, len(t)):
        if t[-1] < t[i] + HORIZON_S:
            continue
        j = np.searchsorted(t, t[i] + HORIZON_S, side="right")
        if j > i + 1 and cs[j] - cs[i + 1] > 0:
            y[i] = (cs[j] - cs[i + 1]) / (j - i - 1)
            c[i] = j - i - 1
    return (y, c) if counts else y


def rich(t, v):
    """Feature matrix (scale-free, trace-time units) for every valid point of one trace."""
    y = targets(t, v)
    idx = np.flatnonzero(~np.isnan(y))
    if len(idx) == 0:
        return None
    vf = np.maximum(v, 1e-3)
    W = np.full((len(idx), K), np.nan)
    T = np.full((len(idx), K), np.nan)
    for k in range(K):
        j = idx - k
        ok = j >= 0
        W[ok, k] = vf[j[ok]]
        T[ok, k] = t[j[ok]]
    last, now = W[:, 0], T[:, 0]
    L = np.log(W / last[:, None])
    avail = ~np.isnan(W)
    cols = np.arange(K)[None, :]
    f = {}

    def masked(A, m):
        return np.where(m, A, np.nan)

    for k in (1, 2, 3, 4):
        f[f"prev{k}"] = np.nan_to_num(L[:, k])
    for k in (3, 5, 10, 32):
        m = avail & (cols < k)
        f[f"mean{k}"] = np.log(np.nanmean(masked(W, m), 1) / last)
        f[f"hm{k}"] = np.log(1 / np.nanmean(masked(1 / W, m), 1) / last)
        f[f"med{k}"] = np.log(np.nanmedian(masked(W, m), 1) / last)
        f[f"lstd{k}"] = np.nanstd(masked(np.log(W), m), 1)
    f["min10"] = np.nanmin(masked(L, avail & (cols < 10)), 1)
    f["max10"] = np.nanmax(masked(L, avail & (cols < 10)), 1)
    for w in (2.5, 5, 10, 20, 60):
        m = avail & (T >= now[:, None] - w)
        f[f"tmean{w}"] = np.log(np.nanmean(masked(W, m), 1) / last)
        f[f"tmed{w}"] = np.log(np.nanmedian(masked(W, m), 1) / last)
        f[f"tcnt{w}"] = m.sum(1).astype(float)
    for a in (0.5, 0.2, 0.05):
        e = np.empty(len(vf))
        e[0] = vf[0]
        for k in range(1, len(vf)):
            e[k] = a * vf[k] + (1 - a) * e[k - 1]
        f[f"ewma{a}"] = np.log(e[idx] / last)
    dt = T[:, :-1] - T[:, 1:]
    f["dt0"] = np.log(np.nan_to_num(dt[:, 0], nan=1.0))
    f["dt1"] = np.log(np.nan_to_num(dt[:, 1], nan=1.0))
    f["lmeddt"] = np.log(np.nan_to_num(np.nanmedian(dt[:, :9], 1), nan=1.0))
    f["nhist"] = avail.sum(1).astype(float)
    jumps = np.abs(np.diff(L, axis=1)) > 0.15
    first = np.where(jumps.any(1), jumps.argmax(1), K - 1)
    f["tsince_change"] = np.log1p(now - T[np.arange(len(idx)), first])
    f["nsince_change"] = first.astype(float)
    for name, m in (("slope10s", avail & (T >= now[:, None] - 10)), ("slope10n", avail & (cols < 10))):
        TT, LL = masked(T, m), masked(L, m)
        tm, lm = np.nanmean(TT, 1, keepdims=True), np.nanmean(LL, 1, keepdims=True)
        num, den = np.nansum((TT - tm) * (LL - lm), 1), np.nansum((TT - tm) ** 2, 1)
        f[name] = np.where(den > 0, num / np.where(den > 0, den, 1), 0) * HORIZON_S
    f["d12"] = np.nan_to_num(L[:, 2] - L[:, 1])
    X = np.stack(list(f.values()), 1).astype(np.float32)
    return X, list(f), np.log(y[idx] / last), last, y[idx]


# Close to the shipped model's 23 inputs (models/features.py), for the gated comparison.
BASE = ["hm5", "prev1", "prev2", "mean3", "mean10", "mean32", "hm10", "hm32", "ewma0.5", "ewma0.2", "ewma0.05",
        "med10", "min10", "max10", "lstd10", "lstd32", "slope10n", "tmean5", "tmean20", "tmean60", "lmeddt", "nhist"]


def stack(rows):
    X = np.concatenate([r[1] for r in rows])
    names = rows[0][2]
    y, last, tgt = (np.concatenate([r[i] for r in rows]) for i in (3, 4, 5))
    name = np.concatenate([[r[0]] * len(r[3]) for r in rows])
    return X, names, y, last, tgt, name


def medape(p, t):
    return float(np.median(np.abs(p - t) / t))


def within20(p, t):
    return float(np.mean(np.abs(p - t) / t <= 0.2))


def baselines(X, names, last):
    return [last] + [last * np.exp(X[:, names.index(k)]) for k in ("hm5", "ewma0.5", "ewma0.2")]


def score(pred_log, X, names, last, tgt):
    p = last * np.exp(pred_log)
    b = baselines(X, names, last)
    best = min(medape(q, tgt) for q in b)
    return dict(n=int(len(tgt)), medianApe=medape(p, tgt), bestBaselineMedianApe=best,
                improvementVsBestBaseline=1 - medape(p, tgt) / best,
                within20=within20(p, tgt), within20BestBaseline=max(within20(q, tgt) for q in b))


def fit(X, y, loss, sigma=0.06):
    if loss == "welsch":
        pred, m = np.zeros(len(y)), None
        for _ in range(3):
            w = np.exp(-0.5 * ((y - pred) / sigma) ** 2) + 1e-3
            m = HistGradientBoostingRegressor(loss="squared_error", **TREE).fit(X, y, sample_weight=w)
            pred = m.predict(X)
        return m
    return HistGradientBoostingRegressor(loss=loss, **TREE).fit(X, y)


def autocorr():
    for d in ("pensieve-fcc-hsdpa/train", "pensieve-fcc-hsdpa/test", "norway-hsdpa", "oboe"):
        a, b, P, Tg, C, D = [], [], [], [], [], []
        for _, t, v in load(d):
            dl = np.diff(np.log(np.maximum(v, 1e-3)))
            a.append(dl[:-1])
            b.append(dl[1:])
            D.append(np.diff(t))
            y, c = targets(t, v, counts=True)
            ok = ~np.isnan(y)
            P.append(np.maximum(v, 1e-3)[ok])
            Tg.append(y[ok])
            C.append(c[ok])
        a, b, C, D = (np.concatenate(x) for x in (a, b, C, D))
        out(experiment="autocorr", dataset=d, sampleSpacingS_p5_p50_p95=[round(float(q), 2) for q in np.percentile(D, [5, 50, 95])],
            samplesInNext5s_median=float(np.median(C)), shareOneSampleInNext5s=float(np.mean(C == 1)),
            lag1SpearmanLogChanges=float(spearmanr(a, b)[0]),
            lastValueMedianApe=medape(np.concatenate(P), np.concatenate(Tg)))


def ceiling():
    for d in ("oboe", "norway-hsdpa"):
        rows = [(n,) + r for n, t, v in load(d) if (r := rich(t, v)) is not None]
        X, names, y, last, tgt, name = stack(rows)
        fold = np.array([hash_name(n) % 3 for n in name])
        for loss, sigma in (("welsch", 0.03), ("welsch", 0.06), ("welsch", 0.15), ("absolute_error", 0.0)):
            pred = np.zeros(len(y))
            for k in range(3):
                te = fold == k
                pred[te] = fit(X[~te], y[~te], loss, sigma).predict(X[te])
            out(experiment="in-domain-ceiling", dataset=d, loss=loss, sigma=sigma, folds=3,
                **score(pred, X, names, last, tgt))


def with_raw(t, v):
    """The rich features plus the raw history: log(sample / last) and log(spacing) for 23 steps back."""
    r = rich(t, v)
    if r is None:
        return None
    X, names, y, last, tgt = r
    idx = np.flatnonzero(~np.isnan(targets(t, v)))
    vf = np.maximum(v, 1e-3)
    cols = []
    for k in range(1, 24):
        j = idx - k
        a = np.zeros(len(idx))
        a[j >= 0] = np.log(vf[j[j >= 0]] / vf[idx[j >= 0]])
        b = np.zeros(len(idx))
        ok = j - 1 >= 0
        b[ok] = np.log(t[j[ok]] - t[j[ok] - 1])
        cols += [a, b]
    return np.c_[X, np.stack(cols, 1)].astype(np.float32), names + [f"raw{i}" for i in range(len(cols))], y, last, tgt


def ceiling_raw():
    for d, specs in (("oboe", (("welsch", 0.04), ("welsch", 0.06))),
                     ("norway-hsdpa", (("welsch", 0.15), ("absolute_error", 0.0)))):
        rows = [(n,) + r for n, t, v in load(d) if (r := with_raw(t, v)) is not None]
        X, names, y, last, tgt, name = stack(rows)
        fold = np.array([hash_name(n) % 3 for n in name])
        for loss, sigma in specs:
            pred = np.zeros(len(y))
            for k in range(3):
                te = fold == k
                pred[te] = fit(X[~te], y[~te], loss, sigma).predict(X[te])
            out(experiment="in-domain-ceiling-raw-history", dataset=d, loss=loss, sigma=sigma, folds=3,
                features=int(X.shape[1]), **score(pred, X, names, last, tgt))


def hash_name(n):
    return sum(map(ord, n))


def thinned(t, v, rng, mode):
    if mode == "thin":
        keep = np.flatnonzero(rng.random(len(t)) < rng.uniform(0.25, 0.6))
    else:
        k = int(mode[1:])
        keep = np.arange(int(rng.integers(k)), len(t), k)
    if len(keep) < 10:
        return None
    starts = np.r_[-1, keep[:-1]]
    cs = np.r_[0, np.cumsum(v)]
    return t[keep], np.array([(cs[b + 1] - cs[a + 1]) / (b - a) for a, b in zip(starts, keep)])


def training_rows():
    """The training split as train.py builds it (real traces, three thinned
    copies of each, synthetic traces), with the rich features; per row its
    source (fcc, hsdpa, synthetic) and whether it is a real (not thinned) trace."""
    rng = np.random.default_rng(20251122)
    rows, src = [], []
    for n, t, v in load("pensieve-fcc-hsdpa/train"):
        s = "fcc" if n.startswith("trace_") else "hsdpa"
        for i, tv in enumerate([(t, v)] + [thinned(t, v, rng, m) for m in ("k2", "k3", "thin")]):
            if tv is not None and (r := rich(*tv)) is not None:
                rows.append((n,) + r)
                src.append((s, i == 0))
    for kind in synthetic.KINDS.values():
        for i in range(40):
            t, v, _ = synthetic.generate(kind, 300.0, rng)
            if (r := rich(np.asarray(t), np.asarray(v))) is not None:
                rows.append((f"syn-{kind.name}-{i}",) + r)
                src.append(("synthetic", False))
    X, names, y, last, tgt, name = stack(rows)
    s_src = np.concatenate([[s] * len(r[3]) for (s, _), r in zip(src, rows)])
    s_real = np.concatenate([[real] * len(r[3]) for (_, real), r in zip(src, rows)])
    return X, names, y, last, tgt, name, s_src, s_real


def sigma():
    """Is sigma = 0.06 the right width for the shipped single model? Welsch
    sigma from 0.06 to 0.6, scored on the training split two ways: by trace
    (validation traces from the same sources as training) and leaving one
    source out (a source the model has not seen, like the held-out datasets).
    Real traces and thinned copies separately. Nothing here sees a held-out set."""
    X, names, y, last, tgt, name, s_src, s_real = training_rows()
    fi = [names.index(k) for k in BASE]
    val = np.array([hash_name(n) % 5 == 0 for n in name])
    for sg in (0.06, 0.15, 0.3, 0.6):
        m = fit(X[~val][:, fi], y[~val], "welsch", sg)
        p = m.predict(X[:, fi])
        for s in ("fcc", "hsdpa"):
            for real in (True, False):
                sel = val & (s_src == s) & (s_real == real)
                out(experiment="sigma", sigma=sg, split="by-trace", source=s, traces="real" if real else "thinned",
                    **score(p[sel], X[sel], names, last[sel], tgt[sel]))
        for s in ("fcc", "hsdpa"):
            m = fit(X[s_src != s][:, fi], y[s_src != s], "welsch", sg)
            for real in (True, False):
                sel = (s_src == s) & (s_real == real)
                out(experiment="sigma", sigma=sg, split="leave-source-out", source=s, traces="real" if real else "thinned",
                    **score(m.predict(X[sel][:, fi]), X[sel], names, last[sel], tgt[sel]))


def selection():
    """Could a predictor that picks, per link, whichever baseline suits that
    link beat the best single baseline? Each trace gets the baseline with the
    lowest medianApe on it, in hindsight."""
    for d in ("pensieve-fcc-hsdpa/test", "norway-hsdpa", "oboe"):
        rows = [(n,) + r for n, t, v in load(d) if (r := rich(t, v)) is not None]
        X, names, _, last, tgt, name = stack(rows)
        ape = np.abs(np.stack(baselines(X, names, last)) - tgt) / tgt
        best = float(np.median(ape, 1).min())
        chosen = np.empty(len(tgt))
        for n in np.unique(name):
            s = name == n
            chosen[s] = ape[np.median(ape[:, s], 1).argmin(), s]
        out(experiment="selection", dataset=d, bestBaselineMedianApe=best,
            perTraceOracleMedianApe=float(np.median(chosen)),
            improvementVsBestBaseline=1 - float(np.median(chosen)) / best)


def gated():
    X, names, y, last, tgt, name, s_src, s_real = training_rows()
    fi = [names.index(k) for k in BASE]
    dense = X[:, names.index("lmeddt")] < np.log(GATE_S)

    def train(mask, variant):
        if variant == "single":
            m = fit(X[mask][:, fi], y[mask], "welsch", 0.06)
            return lambda Z, Zall: m.predict(Z[:, fi])
        md = fit(X[mask & dense][:, fi], y[mask & dense], "welsch", 0.2)
        ms = fit(X[mask & ~dense][:, fi], y[mask & ~dense], "welsch", 0.06)
        return lambda Z, Zall: np.where(Zall[:, names.index("lmeddt")] < np.log(GATE_S),
                                        md.predict(Z[:, fi]), ms.predict(Z[:, fi]))

    val = np.array([hash_name(n) % 5 == 0 for n in name])
    for variant in ("single", "gated"):
        m = train(~val, variant)
        p = m(X, X)
        for s in ("fcc", "hsdpa"):
            sel = val & s_real & (s_src == s)
            out(experiment="validation", variant=variant, split="by-trace", source=s,
                **score(p[sel], X[sel], names, last[sel], tgt[sel]))
        for s in ("fcc", "hsdpa"):
            m = train(s_src != s, variant)
            sel = s_real & (s_src == s)
            out(experiment="validation", variant=variant, split="leave-source-out", source=s,
                **score(m(X[sel], X[sel]), X[sel], names, last[sel], tgt[sel]))
    m = train(np.ones(len(y), bool), "gated")
    for d in ("pensieve-fcc-hsdpa/test", "norway-hsdpa", "oboe"):
        rows_h = [(n,) + r for n, t, v in load(d) if (r := rich(t, v)) is not None]
        Xh, _, _, lh, th, _ = stack(rows_h)
        out(experiment="held-out", variant="gated", dataset=d,
            denseShare=float(np.mean(Xh[:, names.index("lmeddt")] < np.log(GATE_S))),
            **score(m(Xh, Xh), Xh, names, lh, th))


if __name__ == "__main__":
    which = sys.argv[1:] or ["autocorr", "ceiling", "ceiling-raw", "gated", "sigma", "selection"]
    for w in which:
        {"autocorr": autocorr, "ceiling": ceiling, "ceiling-raw": ceiling_raw, "gated": gated, "sigma": sigma, "selection": selection}[w]()
