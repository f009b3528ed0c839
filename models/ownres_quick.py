"""Screen idea (d): the model's own recent residuals on the link as inputs (session 10).

    .venv/models/bin/python models/ownres_quick.py --leave-out oboe pensieve-fcc-hsdpa/test

Diagnostics only, like models/loo_quick.py (whose cached rows it reuses; the rows carry each point's
trace, sample index and time). A first-stage model (the shipped recipe's point model) gives, for
every training row, an out-of-fold prediction (5 folds by whole trace), and for the left-out
dataset the prediction of the first-stage model trained on all training rows, as the agent would
have it. For each point, over the last 8 earlier points of the same trace that are inside the
32-sample window and whose 5 s outcome is complete (as models/features.py `_residuals` picks them):
the median |log(outcome / first-stage prediction)|, its median signed value, and the log ratio of
the first one to the last value's median |error| over the same points (0, 0, 0 with no such point).
A second-stage model is trained on the 29 features plus these three. One JSON line per left-out
dataset: improvement over the best baseline of the first stage and of the second stage, alone and
shrunk halfway to the last value (no adaptation: not the nested figure of the eval).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402
import loo_quick as lq  # noqa: E402
import train  # noqa: E402
from features import FEATURE_NAMES, HORIZON_S, RESIDUAL_POINTS, WINDOW  # noqa: E402

FOLDS = 5


def own_residual_features(part, logpred):
    """The three features for every row of one cached part, from first-stage log ratios `logpred`."""
    r = np.log(part["tgt"] / (part["ref"] * np.exp(logpred)))
    d = np.abs(part["y"])
    out = np.zeros((len(r), 3), np.float32)
    for k in np.unique(part["tid"]):
        rows = np.flatnonzero(part["tid"] == k)  # in time order
        t, idx = part["t"][rows], part["idx"][rows]
        # Earlier rows with a complete outcome: t_b + HORIZON_S <= t_a; inside the window: idx_b > idx_a - WINDOW.
        hi = np.searchsorted(t, t - HORIZON_S, side="right")
        lo = np.maximum(np.searchsorted(idx, idx - WINDOW, side="right"), hi - RESIDUAL_POINTS)
        for a, i in enumerate(rows):
            done = rows[lo[a] : hi[a]]
            if len(done):
                ar = np.median(np.abs(r[done]))
                out[i] = (ar, np.median(r[done]), np.log((ar + 1e-3) / (np.median(d[done]) + 1e-3)))
    return out


def main():
    args = lq.screen_args(__doc__)
    width = len(FEATURE_NAMES)
    cache = lq.CACHE / "all"
    if not (cache / "synthetic.pkl").exists():
        raise SystemExit("run models/loo_quick.py once first (it builds the cached rows)")
    real = lambda d: lq.cached(cache, f"real-{d}", None)  # noqa: E731
    aug = lambda d, m: lq.cached(cache, f"aug-{d}-{m}", None)  # noqa: E731
    synth = lq.cached(cache, "synthetic", None)
    for left_out in args.leave_out:
        parts = [synth] + [p for d in train.ALL_DIRS if d != left_out
                           for p in [real(d)] + [aug(d, m) for m in train.DEFAULT_AUGMENT]]
        X = np.concatenate([p["X"] for p in parts])
        y = np.concatenate([p["y"] for p in parts])
        # Folds by whole trace: a trace and its thinned copies are different traces here (as in train.py).
        trace_key = np.concatenate([p["tid"] + 100000 * j for j, p in enumerate(parts)])
        fold = (trace_key * 2654435761 % 2**32) % FOLDS
        oof = np.zeros(len(y))
        for f in range(FOLDS):
            oof[fold == f] = train.fit_point(X[fold != f], y[fold != f], args.sigma).predict(X[fold == f])
        first = train.fit_point(X, y, args.sigma)
        off, extra = 0, []
        for p in parts:
            extra.append(own_residual_features(p, oof[off : off + len(p["y"])]))
            off += len(p["y"])
        second = train.fit_point(np.hstack([X, np.concatenate(extra)]), y, args.sigma)
        s = real(left_out)
        f1 = first.predict(s["X"])
        f2 = second.predict(np.hstack([s["X"], own_residual_features(s, f1)]))
        base = min(float(np.median(np.abs(v - s["tgt"]) / s["tgt"])) for v in s["base"].values())
        imp = lambda lr: round(1 - float(np.median(np.abs(s["ref"] * np.exp(lr) - s["tgt"]) / s["tgt"])) / base, 4)  # noqa: E731
        print(json.dumps({
            "kind": "ownres-quick", "leftOut": left_out, "sigma": args.sigma, "n": int(len(f1)),
            "firstStage": imp(f1), "firstStageHalfway": imp(0.5 * f1),
            "secondStage": imp(f2), "secondStageHalfway": imp(0.5 * f2),
        }), flush=True)


if __name__ == "__main__":
    main()
