"""Robust kernels on a large stack: seconds per aggregation of ``clients x dim`` float32.

Krum, Multi-Krum and Bulyan take all pairwise distances from one Gram matrix (one float64
matrix product per 16k-column block); the geometric median is Weiszfeld with a relative
tolerance. The stack is random normal (every kernel's work is data-independent except
Weiszfeld's step count, printed).

    python bench/robust_speed.py --clients 1000 --dim 1000000   # 4 GB stack, ~8 GB peak
    python bench/robust_speed.py --clients 1000 --dim 100000    # what BENCHMARKS.md shows
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fedswarm.aggregation import (
    AggregationContext,
    Aggregator,
    Bulyan,
    CenteredClip,
    GeometricMedian,
    Krum,
    Median,
    MultiKrum,
    NormBound,
    TrimmedMean,
    WeightedMean,
)
from fedswarm.aggregation.geometric_median import weiszfeld
from fedswarm.params import Params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--dim", type=int, default=100_000)
    p.add_argument("--f", type=int, default=100)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    updates = rng.standard_normal((args.clients, args.dim), dtype=np.float32)
    weights = np.ones(args.clients)
    params = Params.from_arrays({"w": np.zeros(args.dim, np.float32)})
    ctx = AggregationContext(1, tuple(map(str, range(args.clients))), params, rng)
    kernels: dict[str, Aggregator] = {
        "mean": WeightedMean(),
        "median": Median(),
        "trimmed_mean": TrimmedMean(0.1),
        "krum": Krum(args.f),
        "multi_krum": MultiKrum(args.f),
        "bulyan": Bulyan(min(args.f, (args.clients - 3) // 4)),
        "geometric_median": GeometricMedian(),
        "centered_clip": CenteredClip(),
        "norm_bound": NormBound(1.0),
    }
    print(f"| kernel | seconds ({args.clients} x {args.dim:,}) |\n|---|---|")
    for name, kernel in kernels.items():
        start = time.perf_counter()
        kernel(updates, weights, ctx)
        print(f"| {name} | {time.perf_counter() - start:.2f} |", flush=True)
    _, steps = weiszfeld(updates, 100, 1e-6, 1e-8)
    print(f"\nWeiszfeld steps to tolerance 1e-6: {steps}")


if __name__ == "__main__":
    main()
