"""Privacy-utility trade-off of client-level DP-FedAvg (``[privacy] mechanism = "central"``).

Fashion-MNIST over ``--clients`` participants (IID, 60 images each at 1,000), Poisson
sampling at rate ``--rate``, ``--rounds`` rounds. For each target epsilon in ``--epsilons``
(delta 1e-5) the noise multiplier is calibrated with the RDP accountant for exactly those
rounds (``fedswarm privacy calibrate``), the run is trained, and its central test accuracy,
the epsilon its accountant reports and its mean round time are measured against the
non-private run (the same sampling and weighting, no clipping, no noise) in the same process.

    python bench/privacy.py --out runs/bench-privacy       # writes results.json, prints a table
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from fedswarm.privacy import AccountantKind, calibrate_noise
from fedswarm.run.build import build
from fedswarm.run.config import RunConfig, parse_config
from fedswarm.run.experiment import RoundProgress


def config(args: argparse.Namespace, noise: float | None) -> RunConfig:
    raw: dict[str, Any] = {
        "seed": args.seed,
        "rounds": args.rounds,
        "data": {"name": "fashion_mnist", "num_clients": args.clients, "local_test_fraction": 0},
        "model": {"name": "mlp", "hidden": [64]},
        "client": {"epochs": 1, "batch_size": 20, "lr": args.lr},
        "strategy": {"sampling": "poisson", "fraction": args.rate, "weighting": "uniform"},
        "simulation": {"backend": "vectorized", "threads": args.threads},
        "evaluation": {"every": args.rounds},
    }
    if noise is not None:
        raw["privacy"] = {"noise_multiplier": noise, "clip_norm": args.clip, "delta": 1e-5}
    return parse_config(raw, "bench/privacy.py")


def train(cfg: RunConfig) -> dict[str, Any]:
    exp = build(cfg)
    seconds: list[float] = []
    last: dict[str, Any] = {}

    def on_round(p: RoundProgress) -> None:
        seconds.append(p.report.seconds)
        last["epsilon"] = p.report.metrics.get("privacy/epsilon", math.inf)
        if p.report.central is not None:
            last["accuracy"] = p.report.central.accuracy

    start = time.perf_counter()
    exp.train(on_round)
    return {
        "accuracy": last["accuracy"],
        "epsilon": last["epsilon"],
        "round_s": sum(seconds) / len(seconds),
        "wall_s": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-privacy"))
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # One BLAS thread: on a contended machine OpenBLAS's spinning threads made each
    # np.linalg.norm of an update (ClipNorm, on every participant) take ~20 ms.
    threadpool_limits(args.threads)
    rows = [{"target_epsilon": math.inf, "noise_multiplier": 0.0, **train(config(args, None))}]
    for eps in args.epsilons:
        z = calibrate_noise(eps, 1e-5, args.rate, args.rounds, AccountantKind.RDP)
        rows.append({"target_epsilon": eps, "noise_multiplier": z, **train(config(args, z))})
    base = rows[0]["round_s"]
    head = ("target epsilon", "noise multiplier", "epsilon spent", "accuracy", "round s", "ratio")
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['target_epsilon']:g} | {r['noise_multiplier']:.3f} | {r['epsilon']:.3f} "
            f"| {r['accuracy']:.4f} | {r['round_s']:.3f} | {r['round_s'] / base:.2f}x |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": platform.platform()}
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
