"""Screen a learned, feature-dependent shrink of the model toward the last value (session 10).

    .venv/models/bin/python models/shrink_quick.py --leave-out oboe pensieve-fcc-hsdpa/test

Diagnostics only, like models/loo_quick.py (whose cached rows it reuses). The shipped default expert
is the model shrunk halfway to the last value, exp(0.5 f) x last, with f the model's log ratio. Here
the exponent b is learned per bin of the link's recent record instead (the residual feature
log_res_ewma50_over_last: does smoothing or the last value win on this link lately; links with no
completed point yet get a bin of their own), from out-of-dataset predictions on the training
datasets: for the left-out dataset L, each other dataset d is predicted by a model trained without L
and d (a stacked generalization whose folds are whole datasets, Wolpert 1992), and each bin's b in
{0, 1/8, ..., 1} minimises the mean over those datasets of median APE / the dataset's best baseline.
Then the model trained without L is scored on L with the learned b. One JSON line per left-out
dataset: improvement over the best baseline of the model alone, of the fixed halfway shrink and of
the learned shrink (no adaptation: not the nested figure of `npm run eval -- predictor`).
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
from features import FEATURE_NAMES  # noqa: E402

GRID = np.linspace(0, 1, 9)
BINS = 4
RATIO = FEATURE_NAMES.index("log_res_ewma50_over_last")
POINTS = FEATURE_NAMES.index("res_points")


def main():
    args = lq.screen_args(__doc__)
    width = len(FEATURE_NAMES)
    cache = lq.CACHE / "all"
    cache.mkdir(parents=True, exist_ok=True)
    real = lambda d: lq.cached(cache, f"real-{d}", lambda: lq.rows(lq.real_traces(args.traces, d), width))  # noqa: E731
    aug = {}
    for d in train.ALL_DIRS:
        def build(d=d, m=None):
            rng = np.random.default_rng(lq.AUGMENT_SEED)
            copies = [train.thinned(t, v, rng, m) for t, v in lq.real_traces(args.traces, d)]
            return lq.rows([c for c in copies if c], width)
        aug[d] = [lq.cached(cache, f"aug-{d}-{m}", lambda d=d, m=m: build(d, m)) for m in train.DEFAULT_AUGMENT]
    if not (cache / "synthetic.pkl").exists():
        raise SystemExit("run models/loo_quick.py once first (it builds the synthetic rows)")
    synth = lq.cached(cache, "synthetic", None)

    def fit(without):
        parts = [synth] + [p for d in train.ALL_DIRS if d not in without for p in [real(d)] + aug[d]]
        X = np.concatenate([p["X"] for p in parts])
        y = np.concatenate([p["y"] for p in parts])
        return train.fit_point(X, y, args.sigma)

    def bins_of(X, edges):
        b = np.digitize(X[:, RATIO], edges)
        return np.where(X[:, POINTS] > 0, b, BINS)  # BINS: no completed point yet

    def ratio(pred, s):
        base = min(float(np.median(np.abs(v - s["tgt"]) / s["tgt"])) for v in s["base"].values())
        return float(np.median(np.abs(pred - s["tgt"]) / s["tgt"])) / base

    for left_out in args.leave_out:
        inner = [d for d in train.ALL_DIRS if d != left_out]
        oof = {d: fit({left_out, d}).predict(real(d)["X"]) for d in inner}
        have = np.concatenate([real(d)["X"][real(d)["X"][:, POINTS] > 0, RATIO] for d in inner])
        edges = np.quantile(have, np.linspace(0, 1, BINS + 1)[1:-1])
        learned = {}
        for k in range(BINS + 1):
            def loss(b):
                out = []
                for d in inner:
                    s, m = real(d), bins_of(real(d)["X"], edges) == k
                    f = np.where(m, b, 0.5) * oof[d]  # other bins at the fixed halfway shrink
                    out.append(ratio(s["ref"] * np.exp(f), s))
                return float(np.mean(out))
            learned[k] = float(min(GRID, key=loss))
        s = real(left_out)
        f = fit({left_out}).predict(s["X"])
        b = np.vectorize(learned.get)(bins_of(s["X"], edges))
        print(json.dumps({
            "kind": "shrink-quick", "leftOut": left_out, "sigma": args.sigma, "n": int(len(f)),
            "binEdges": [round(float(e), 4) for e in edges], "learnedExponent": learned,
            "onnxImprovementVsBestBaseline": round(1 - ratio(s["ref"] * np.exp(f), s), 4),
            "halfwayImprovementVsBestBaseline": round(1 - ratio(s["ref"] * np.exp(0.5 * f), s), 4),
            "learnedImprovementVsBestBaseline": round(1 - ratio(s["ref"] * np.exp(b * f), s), 4),
        }), flush=True)


if __name__ == "__main__":
    main()
