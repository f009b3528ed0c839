"""A quick leave-one-dataset-out signal for a training change, before the full retrain.

    .venv/models/bin/python models/loo_quick.py --leave-out oboe [--augment k2,k3,thin,s2-6p ...] [--base-features]
        [--sigma 0.06 ...] [--loss welsch|absolute] [--weight none|trace|sqrt-trace|dataset ...] [--also-exclude D]

Diagnostics only: nothing here is used by models/train.py or shipped. For each
left-out dataset and each --augment recipe (models/train.py's modes, one recipe
per argument), fits the point model as models/train.py does (Welsch sigma 0.06,
the same trees) on every other dataset, their thinned copies and 160 synthetic
traces, and prints one JSON line: the model alone and the geometric mean of the
model and the last value (the shipped default expert, `onnx*last-value`), as
improvement in median APE over the best of the eval's four classical estimators
on the left-out dataset. No adaptation and no p10 model: a few minutes per
line instead of the half hour of `bash models/train-loo.sh` plus
`npm run eval -- predictor`, and not a substitute for their nested figures (the
figures differ in their third decimal: other augmentation and synthetic seeds,
and the model alone here, not the adaptive prediction).

Since session 10 a line per combination of --augment, --weight and --sigma; --loss, --weight and
--also-exclude are the session 10 screens (docs/predictor.md).

--base-features drops the six residual features (models/features.py
RESIDUAL_NAMES) and trains on the 23 features of the models before session 9.

Feature rows are cached under tmp/loo-quick-cache/ (the repository's ignored tmp/).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import dataset  # noqa: E402
import synthetic  # noqa: E402
import train  # noqa: E402
from features import FEATURE_NAMES, FLOOR_MBPS, MIN_SAMPLES, RESIDUAL_NAMES, features  # noqa: E402

CACHE = HERE.parent / "tmp" / "loo-quick-cache"
# Seeds of this script's thinned copies and synthetic traces (not train.py's: the rows are cached
# per dataset and mode, so one mode's copies do not depend on which other modes are asked for).
AUGMENT_SEED = 7
SYNTH_SEED = 1


def screen_args(doc, argv=None):
    """The options models/shrink_quick.py and models/ownres_quick.py share: traces, datasets left out, Welsch width."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, default=dataset.default_traces_dir(HERE.parent))
    ap.add_argument("--leave-out", nargs="+", choices=train.ALL_DIRS, default=["oboe"])
    ap.add_argument("--sigma", type=float, default=0.06)
    return ap.parse_args(argv)

def _base_features(times, values):
    return features(times, values)[: len(FEATURE_NAMES) - len(RESIDUAL_NAMES)]


def classical(tput, idx):
    """The eval's four baselines (models/classical-estimators.ts) at the given points."""
    x = np.maximum(np.asarray(tput, float), FLOOR_MBPS)
    e5, e2 = np.empty(len(x)), np.empty(len(x))
    e5[0] = e2[0] = x[0]
    for j in range(1, len(x)):
        e5[j] = 0.5 * x[j] + 0.5 * e5[j - 1]
        e2[j] = 0.2 * x[j] + 0.8 * e2[j - 1]
    hm5 = [(i - max(0, i - MIN_SAMPLES + 1) + 1) / np.sum(1 / x[max(0, i - MIN_SAMPLES + 1) : i + 1]) for i in idx]
    return {"last-value": x[idx], "harmonic-mean-5": np.asarray(hm5), "ewma-0.5": e5[idx], "ewma-0.2": e2[idx]}


WEIGHTS = ("none", "trace", "sqrt-trace", "dataset")


def row_weights(kind, groups):
    """Per-row training weights (mean 1) for --weight; groups: lists of row blocks, one list per dataset."""
    if kind == "none":
        return None
    if kind in ("trace", "sqrt-trace"):
        tlen = np.concatenate([p["tlen"] for g in groups for p in g])
        w = 1 / tlen if kind == "trace" else 1 / np.sqrt(tlen)
    else:
        w = np.concatenate([np.full(len(p["y"]), 1.0 / sum(len(q["y"]) for q in g)) for g in groups for p in g])
    return w / w.mean()


def rows(traces, width):
    X, y, ref, tgt, base, tlen, tid, at, when = [], [], [], [], [], [], [], [], []
    for k, (times, tput) in enumerate(traces):
        f, ys, r, t, idx = dataset.rows_for_trace(times, tput)
        if ys:
            tid += [k] * len(ys)
            at += idx
            when += [times[i] for i in idx]
            X += f
            y += ys
            ref += r
            tgt += t
            tlen += [len(ys)] * len(ys)
            base.append(classical(tput, np.asarray(idx)))
    return {"X": np.asarray(X, np.float32).reshape(-1, width), "y": np.asarray(y), "ref": np.asarray(ref),
            "tgt": np.asarray(tgt), "tlen": np.asarray(tlen, float),
            "tid": np.asarray(tid), "idx": np.asarray(at), "t": np.asarray(when, float),
            "base": {k: np.concatenate([b[k] for b in base]) if base else np.zeros(0) for k in classical([1.0], [0])}}


def real_traces(root, d):
    out = []
    for p in dataset.trace_files(root / d):
        times, tput, _ = dataset.read_trace(p)
        if len(times) > 2 * MIN_SAMPLES:
            out.append((times, tput))
    return out


def cached(cache, key, build):
    f = cache / (key.replace("/", "-") + ".pkl")
    if f.exists():
        return pickle.loads(f.read_bytes())
    value = build()
    f.write_bytes(pickle.dumps(value))
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, default=dataset.default_traces_dir(HERE.parent))
    ap.add_argument("--leave-out", nargs="+", choices=train.ALL_DIRS, default=["oboe"])
    ap.add_argument("--augment", nargs="+", type=train.augment_modes, default=[train.DEFAULT_AUGMENT],
                    help="one or more recipes, each comma-separated modes as models/train.py --augment")
    ap.add_argument("--base-features", action="store_true")
    ap.add_argument("--sigma", nargs="+", type=float, default=[0.06], help="Welsch widths, one line each")
    ap.add_argument("--also-exclude", choices=train.ALL_DIRS, default=None,
                    help="train without this dataset as well (an inner leave-one-out: the left-out model's "
                         "choices judged on the other datasets only)")
    ap.add_argument("--loss", choices=("welsch", "absolute"), default="welsch")
    ap.add_argument("--weight", nargs="+", choices=WEIGHTS, default=["none"],
                    help="row weights, one line per choice: none; trace (each trace, thinned copy or synthetic "
                         "trace weighs the same however many points it has); dataset (each real dataset with "
                         "its thinned copies weighs as much as the synthetic traces together); sqrt-trace "
                         "(1/sqrt of the trace's points)")
    args = ap.parse_args()
    width = len(FEATURE_NAMES)
    cache = CACHE / "all"
    if args.base_features:
        dataset.features = _base_features  # rows_for_trace looks the name up at call time
        width -= len(RESIDUAL_NAMES)
        cache = CACHE / "base"
    cache.mkdir(parents=True, exist_ok=True)

    def synth():
        rng = np.random.default_rng(SYNTH_SEED)
        traces = []
        for kind in synthetic.KINDS.values():
            for _ in range(train.SYNTH_TRAIN_PER_KIND):
                times, tput, _ = synthetic.generate(kind, train.SYNTH_TRAIN_SECONDS, rng)
                traces.append((list(times), list(tput)))
        return rows(traces, width)

    def augmented(d, mode):
        rng = np.random.default_rng(AUGMENT_SEED)
        copies = [train.thinned(times, tput, rng, mode) for times, tput in real_traces(args.traces, d)]
        return rows([c for c in copies if c], width)

    synth_rows = cached(cache, "synthetic", synth)
    for left_out in args.leave_out:
        scored = cached(cache, f"real-{left_out}", lambda: rows(real_traces(args.traces, left_out), width))
        ape = lambda p: float(np.median(np.abs(p - scored["tgt"]) / scored["tgt"]))  # noqa: E731
        base = {k: ape(v) for k, v in scored["base"].items()}
        best = min(base, key=base.get)
        if left_out == args.also_exclude:
            continue
        for recipe, weight, sigma in [(r, w, g) for r in args.augment for w in args.weight for g in args.sigma]:
            parts, groups = [synth_rows], [[synth_rows]]
            for d in train.ALL_DIRS:
                if d not in (left_out, args.also_exclude):
                    g = [cached(cache, f"real-{d}", lambda d=d: rows(real_traces(args.traces, d), width))]
                    g += [cached(cache, f"aug-{d}-{m}", lambda d=d, m=m: augmented(d, m)) for m in recipe]
                    parts += g
                    groups.append(g)
            X = np.concatenate([p["X"] for p in parts])
            y = np.concatenate([p["y"] for p in parts])
            started = time.time()
            model = train.fit_point(X, y, sigma, row_weights(weight, groups), args.loss)
            pred = scored["ref"] * np.exp(model.predict(scored["X"]))
            alone, shrunk = ape(pred), ape(np.sqrt(pred * scored["base"]["last-value"]))
            print(json.dumps({
                "kind": "loo-quick", "leftOut": left_out, "augment": ",".join(recipe) or "none",
                "baseFeatures": args.base_features, "loss": args.loss, "sigma": sigma,
                "alsoExcluded": args.also_exclude,
                "weight": weight, "trainRows": int(len(y)), "n": int(len(scored["y"])),
                "bestBaseline": best, "bestBaselineMedianApe": round(base[best], 4),
                "onnxMedianApe": round(alone, 4), "onnxImprovementVsBestBaseline": round(1 - alone / base[best], 4),
                "onnxLastValueImprovementVsBestBaseline": round(1 - shrunk / base[best], 4),
                "fitSeconds": round(time.time() - started),
            }), flush=True)


if __name__ == "__main__":
    main()
