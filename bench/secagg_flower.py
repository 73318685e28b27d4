"""Flower's SecAgg+ on the same trivial workload as ``bench/secagg.py`` (Flower 1.41,
``SecAggPlusWorkflow`` with ``secaggplus_mod``, the Ray simulation engine), no dropouts.
Run with a Python that has ``flwr[simulation]==1.41.0`` (the ``bench`` extra):

    python bench/secagg_flower.py --clients 50 --dim 100000 --rounds 3 --json /tmp/flwr.json

Seconds per round are taken from the workflow's own calls (the Ray start-up is left out).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import ClientApp, NumPyClient  # type: ignore[import-not-found, unused-ignore]
from flwr.client.mod import secaggplus_mod  # type: ignore[import-not-found, unused-ignore]
from flwr.common import Context, ndarrays_to_parameters  # type: ignore[import-not-found, unused-ignore]
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig  # type: ignore[import-not-found, unused-ignore]
from flwr.server.strategy import FedAvg  # type: ignore[import-not-found, unused-ignore]
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # type: ignore[import-not-found, unused-ignore]
from flwr.simulation import run_simulation  # type: ignore[import-not-found, unused-ignore]

ARGS: argparse.Namespace
ROUND_SECONDS: list[float] = []


class Vector(NumPyClient):  # type: ignore[misc]
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
        return [self.rng.uniform(-0.5, 0.5, ARGS.dim).astype(np.float32)], 1, {}


def client_fn(context: Context) -> Any:
    return Vector(int(context.node_config["partition-id"])).to_client()


class Timed(SecAggPlusWorkflow):  # type: ignore[misc]
    def __call__(self, grid: Grid, context: Any) -> None:
        start = time.perf_counter()
        super().__call__(grid, context)
        ROUND_SECONDS.append(time.perf_counter() - start)


def server(grid: Grid, context: Context) -> None:
    strategy = FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_available_clients=ARGS.clients,
        initial_parameters=ndarrays_to_parameters([np.zeros(ARGS.dim, np.float32)]),
    )  # fmt: skip
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=ARGS.rounds), strategy=strategy
    )
    # Flower's example settings: shares to a share of the clients, threshold a share of those
    fit = Timed(num_shares=ARGS.shares, reconstruction_threshold=ARGS.threshold)
    DefaultWorkflow(fit_workflow=fit)(grid, legacy)


def main() -> None:
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--shares", type=float, default=0.2)  # Flower's example: num_shares
    p.add_argument("--threshold", type=float, default=0.5)  # and reconstruction_threshold
    p.add_argument("--json", type=Path, required=True)
    ARGS = p.parse_args()
    app = ServerApp()
    app.main()(server)
    run_simulation(
        server_app=app, client_app=ClientApp(client_fn=client_fn, mods=[secaggplus_mod]),
        num_supernodes=ARGS.clients, backend_config={"client_resources": {"num_cpus": 1}},
    )  # fmt: skip
    out = {"round_seconds": ROUND_SECONDS, "rounds": ARGS.rounds, "clients": ARGS.clients,
           "dim": ARGS.dim, "loadavg_1m": os.getloadavg()[0]}  # fmt: skip
    ARGS.json.write_text(json.dumps(out, indent=1))
    print(out)


if __name__ == "__main__":
    main()
