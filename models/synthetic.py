"""Seeded generator of datacenter, inter-datacenter and internet link traces.

The real traces in ../shared/traces are access links only (0.1-10 Mbit/s,
no RTT). fedflow also runs between racks and between datacenters, so this
generator makes links of that kind, with RTT, from a small physical story:

    throughput(t) = capacity * (1 - cross_traffic(t)) * exp(ar(t)) * dip(t)

- capacity: drawn log-uniformly from the scenario's range.
- cross_traffic(t): other flows sharing the bottleneck, an on/off process
  (Poisson arrivals, exponential holding times) each taking a random share.
- ar(t): an AR(1) process in log space for everything else (rate control,
  host load); cellular links get a much larger sigma than datacenter links.
- dip(t): incast (many senders answering one receiver at once collapses the
  switch buffer for a fraction of a second) in datacenter scenarios, and
  short outages on cellular links.
- rtt(t) = base_rtt * (1 + queueing), where queueing grows with cross-traffic
  and during dips, plus jitter.

The simulation runs on a 50 ms grid and each output sample is the mean over
its sampling interval (0.3-1.2 s, jittered, like a probe that reports once a
transfer chunk completes). Everything is drawn from numpy's PCG64 seeded by
the caller, so the same seed gives the same traces on every machine.

Each scenario kind carries the mode a correct policy should pick for a
trusted pair; its ranges keep a margin from the policy thresholds in
core/mode-policy.ts so the label is a property of the link, not of noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_S = 0.05


@dataclass(frozen=True)
class Kind:
    name: str
    expected_trusted_mode: str
    capacity_mbps: tuple[float, float]
    base_rtt_ms: tuple[float, float]
    ar_sigma: float  # stationary std of the log-space AR(1) component
    ar_tau_s: float  # its correlation time
    cross_rate_hz: float  # arrivals of cross-traffic flows
    cross_share: tuple[float, float]  # share of the bottleneck one flow takes
    cross_hold_s: float  # mean holding time of a cross flow
    dip_rate_hz: float  # incast dips / outages per second
    dip_depth: tuple[float, float]  # throughput multiplier during a dip
    dip_len_s: tuple[float, float]


KINDS: dict[str, Kind] = {
    # Same-datacenter 10-100 Gbit/s fabric, sub-ms RTT, incast dips.
    "dc-lan": Kind("dc-lan", "datacenter", (10_000, 100_000), (0.05, 0.8), 0.05, 2.0,
                   0.2, (0.05, 0.35), 3.0, 0.15, (0.1, 0.5), (0.05, 0.4)),
    # Dedicated inter-datacenter WAN: multi-Gbit/s, 8-40 ms, bulk cross-traffic.
    "inter-dc": Kind("inter-dc", "hybrid", (2_000, 40_000), (8.0, 40.0), 0.08, 5.0,
                     0.1, (0.1, 0.4), 10.0, 0.01, (0.4, 0.8), (0.2, 1.0)),
    # Cloud egress over the public internet: tens of Mbit/s, 15-90 ms.
    "internet-egress": Kind("internet-egress", "internet", (5.0, 60.0), (15.0, 90.0), 0.2, 3.0,
                            0.3, (0.1, 0.5), 5.0, 0.02, (0.2, 0.6), (0.3, 2.0)),
    # Congested or cellular-like: 0.3-15 Mbit/s, long and jittery, outages.
    "cellular": Kind("cellular", "internet", (0.3, 15.0), (40.0, 300.0), 0.5, 4.0,
                     0.2, (0.1, 0.6), 5.0, 0.03, (0.02, 0.2), (0.5, 4.0)),
}


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def generate(kind: Kind, duration_s: float, rng: np.random.Generator):
    """One trace: (times_s, throughput_mbps, rtt_ms) as numpy arrays."""
    steps = int(duration_s / GRID_S)
    capacity = _loguniform(rng, *kind.capacity_mbps)
    base_rtt = _loguniform(rng, *kind.base_rtt_ms)
    phi = np.exp(-GRID_S / kind.ar_tau_s)
    innov = kind.ar_sigma * np.sqrt(1 - phi * phi)
    ar = np.empty(steps)
    ar[0] = rng.normal(0, kind.ar_sigma)
    noise = rng.normal(0, innov, steps)
    for k in range(1, steps):
        ar[k] = phi * ar[k - 1] + noise[k]
    cross = np.zeros(steps)
    for _ in range(rng.poisson(kind.cross_rate_hz * duration_s)):
        start = int(rng.uniform(0, steps))
        hold = int(rng.exponential(kind.cross_hold_s) / GRID_S) + 1
        cross[start : start + hold] += rng.uniform(*kind.cross_share)
    cross = np.minimum(cross, 0.9)
    dip = np.ones(steps)
    for _ in range(rng.poisson(kind.dip_rate_hz * duration_s)):
        start = int(rng.uniform(0, steps))
        length = int(rng.uniform(*kind.dip_len_s) / GRID_S) + 1
        dip[start : start + length] = np.minimum(dip[start : start + length], rng.uniform(*kind.dip_depth))
    fine = capacity * (1 - cross) * np.exp(ar - kind.ar_sigma**2 / 2) * dip
    queue = 2.0 * cross + 3.0 * (1 - dip)
    fine_rtt = base_rtt * (1 + queue) * np.exp(rng.normal(0, 0.05, steps))
    times, tput, rtt = [], [], []
    k = 0
    while True:
        width = int(rng.uniform(0.3, 1.2) / GRID_S)
        if k + width > steps:
            break
        tput.append(float(fine[k : k + width].mean()))
        rtt.append(float(fine_rtt[k : k + width].mean()))
        k += width
        times.append(round(k * GRID_S, 3))
    return np.array(times), np.array(tput), np.array(rtt)


def write_trace(path, times, tput, rtt) -> None:
    """Shared trace format plus a third column, RTT in ms (readers may ignore it)."""
    with open(path, "w") as f:
        for a, b, c in zip(times, tput, rtt):
            f.write(f"{a:.3f}\t{b:.6g}\t{c:.6g}\n")
