"""Reading traces and turning them into (features, target) rows."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from features import HORIZON_S, MIN_SAMPLES, features, reference, target_mean


def read_trace(path: Path):
    """`seconds<TAB>Mbit/s[<TAB>rtt_ms]` per line; malformed lines are skipped."""
    times, tput, rtt = [], [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            t, v = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        if not (math.isfinite(t) and math.isfinite(v)) or v < 0:
            continue
        if times and t <= times[-1]:
            continue  # keep time strictly increasing
        times.append(t)
        tput.append(v)
        rtt.append(float(parts[2]) if len(parts) > 2 else float("nan"))
    return times, tput, rtt


def trace_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if p.is_file() and not p.name.startswith("."))


def rows_for_trace(times, tput):
    """Every prediction point after warm-up: (features, log(target/ref), ref, target)."""
    feats, ys, refs, targets, lasts = [], [], [], [], []
    for i in range(MIN_SAMPLES - 1, len(times)):
        tgt = target_mean(times, tput, i)
        if tgt is None:
            continue
        lo = max(0, i + 1 - 64)
        ht, hv = times[lo : i + 1], tput[lo : i + 1]
        ref = reference(hv)
        feats.append(features(ht, hv))
        ys.append(math.log(max(tgt, 1e-3) / ref))
        refs.append(ref)
        targets.append(tgt)
        lasts.append(i)
    return feats, ys, refs, targets, lasts


def rows_for_dir(directory: Path):
    X, y, ref, tgt, group = [], [], [], [], []
    for gi, path in enumerate(trace_files(directory)):
        times, tput, _ = read_trace(path)
        f, ys, r, t, _ = rows_for_trace(times, tput)
        X += f
        y += ys
        ref += r
        tgt += t
        group += [gi] * len(ys)
    return (np.array(X, dtype=np.float32).reshape(-1, len(X[0]) if X else 0), np.array(y),
            np.array(ref), np.array(tgt), np.array(group))


def default_traces_dir(repo_root: Path) -> Path:
    """FEDFLOW_TRACES, else ../shared/traces next to the repository."""
    env = os.environ.get("FEDFLOW_TRACES")
    return Path(env) if env else (repo_root / ".." / "shared" / "traces").resolve()


__all__ = ["read_trace", "trace_files", "rows_for_trace", "rows_for_dir", "default_traces_dir", "HORIZON_S"]
