"""Split learning against FedAvg: accuracy per epoch, bytes per participant per epoch, wall time.

Every mode runs the same data, model, batch size and optimiser through the public pieces of
``fedswarm run`` (``run.build.build`` and the run's paradigm), over an in-memory transport
that encodes every message with the run's wire codec and counts its bytes, both ways, per
participant. A split epoch sends each example's cut activations up and their gradients down
(U-shaped: also the trunk's output down and its gradient up), plus the participant part at
each hand-off; FedAvg sends the model down and the update up once per participant per round
(E = 1: one epoch). Singh et al. 2019 ("Detailed comparison of communication efficiency of
split learning and federated learning"): split learning's cost grows with the data per
participant, FedAvg's with the model, so split learning wins for large models spread thin.

    python bench/split.py --dataset digits --clients 10 100 --models small large --epochs 3
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fedswarm.messages import Failure, Outcome
from fedswarm.run.build import build, run_codec
from fedswarm.run.config import parse_config
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.transport.base import Fold, Request
from fedswarm.wire import Codec

MODES = ("fedavg", "vanilla", "u_shaped", "splitfed_v1", "splitfed_v2")
MODELS: dict[str, dict[str, dict[str, Any]]] = {  # dataset -> size -> [model] table
    "digits": {
        "small": {"name": "mlp", "hidden": [32, 16]},
        "large": {"name": "mlp", "hidden": [1024, 1024]},
    },
    "fashion_mnist": {
        "small": {"name": "cnn", "channels": [4, 8], "hidden": [32]},
        "large": {"name": "cnn", "channels": [32, 64], "hidden": [512]},
    },
}


@dataclass(eq=False)
class Counting(InMemoryTransport):
    """Counts the encoded bytes of every message, per participant."""

    codec: Codec | None = None
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        assert self.codec is not None
        for cid, ins in requests:
            self.bytes[cid] += len(self.codec.encode(ins))
        outcomes = list(super().exchange(requests, timeout=timeout, fold=None))
        for o in outcomes:
            if not isinstance(o, Failure):
                self.bytes[o.client_id] += len(self.codec.encode(o))
        return outcomes


@dataclass(frozen=True)
class Setup:
    dataset: str
    epochs: int
    clip: float | None = None  # cut-layer protection, split modes only
    noise: float = 0.0


def config(setup: Setup, clients: int, size: str, mode: str) -> dict[str, Any]:
    dataset, epochs = setup.dataset, setup.epochs
    raw: dict[str, Any] = {
        "seed": 0,
        "rounds": epochs,
        "data": {"name": dataset, "num_clients": clients, "local_test_fraction": 0.0},
        "model": MODELS[dataset][size],
        "client": {"batch_size": 16, "lr": 0.05},
        "simulation": {"backend": "sequential"},
    }
    if mode != "fedavg":
        raw["split"] = {"mode": mode, "noise": setup.noise}
        if setup.clip is not None:
            raw["split"]["clip"] = setup.clip
    return raw


def measure(setup: Setup, clients: int, size: str, mode: str) -> dict[str, Any]:
    exp, epochs = build(parse_config(config(setup, clients, size, mode))), setup.epochs
    ids = list(exp.dataset.client_ids())
    paradigm = exp.rounds
    transport = Counting(ids, exp.clients, kinds=paradigm.kinds, codec=run_codec())
    accuracy: list[float] = []

    def central(params: Any) -> Any:
        ev = exp.learner.evaluate(params, exp.dataset.central_test)
        accuracy.append(ev.accuracy)
        return ev

    begun = time.perf_counter()
    paradigm.run_rounds(
        transport, exp.initial_state(), rounds=epochs, run=exp.run, policy=exp.policy,
        central_eval=central, on_round=lambda s, r: None,
    )  # fmt: skip
    seconds = time.perf_counter() - begun
    per = sum(transport.bytes.values()) / len(ids) / epochs
    params = exp.learner.init_params(0).dim
    return {"mode": mode, "clients": clients, "model": size, "params": params,
            "kib": per / 1024, "acc": accuracy, "s_per_epoch": seconds / epochs}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=sorted(MODELS))
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--models", nargs="+", default=["small", "large"])
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--clip", type=float, default=None, help="split modes: activation clip")
    ap.add_argument("--noise", type=float, default=0.0, help="split modes: activation noise")
    args = ap.parse_args()
    setup = Setup(args.dataset, args.epochs, args.clip, args.noise)
    print("| participants | model (params) | mode | KiB / participant / epoch |", end="")
    print(" test acc per epoch | s / epoch |")
    print("|---|---|---|---|---|---|")
    for clients in args.clients:
        for size in args.models:
            for mode in args.modes:
                r = measure(setup, clients, size, mode)
                acc = ", ".join(f"{a:.3f}" for a in r["acc"])
                row = f"| {clients} | {size} ({r['params']:,}) | {mode} | {r['kib']:,.0f} |"
                print(f"{row} {acc} | {r['s_per_epoch']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
