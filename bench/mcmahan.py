"""McMahan et al. 2017-style paper check on Fashion-MNIST, through fedswarm's public API.

100 clients, IID or pathological non-IID (2 label-sorted shards each), C = 0.1, B = 10,
E in {1, 5}, FedAvg / FedProx / SCAFFOLD, plus the paper's FedSGD baseline (E = 1,
B = all local data) for its "speedup" view. Every run is a :class:`RunConfig` run by
``experiment.build`` + ``Experiment.train``, the code path of ``fedswarm run`` minus
the run directory. Central test accuracy is measured every ``--eval-every`` rounds. The
sequential backend is the default here (see ``--backend``); backends agree bit for bit on
FedAvg and SCAFFOLD but not on FedProx or full-batch FedSGD.

    python bench/mcmahan.py --out /tmp/mcmahan.md    # full check, ~20-25 min on 2 cores
    python bench/mcmahan.py --quick                  # smoke run: 3 rounds per setting
"""

from __future__ import annotations

import argparse
import enum
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedswarm.data.partition import Partition
from fedswarm.run.build import build
from fedswarm.run.config import BackendKind, RunConfig, parse_config
from fedswarm.run.experiment import RoundProgress

__all__ = ["Algorithm", "Model", "Options", "RunResult", "Setting", "main", "markdown_table"]

NUM_CLIENTS = 100
CLIENTS_PER_ROUND = 10  # C = 0.1
BATCH_SIZE = 10
FULL_BATCH = 60_000  # larger than any client's data: one full-batch step per epoch (B = inf)
TARGETS = (0.80, 0.85)
TAIL = 10  # evaluations averaged for the "late accuracy" column: non-IID curves oscillate


class Algorithm(enum.Enum):
    FEDSGD = "fedsgd"  # FedAvg with E = 1, B = inf: one gradient step per client per round
    FEDAVG = "fedavg"
    FEDPROX = "fedprox"
    SCAFFOLD = "scaffold"


class Model(enum.Enum):
    MLP = "mlp"  # the paper's 2NN: 784-200-200-10, ReLU
    CNN = "cnn"  # the paper's CNN: conv5x5(32), conv5x5(64), dense 512


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    partition: Partition
    epochs: int
    algorithm: Algorithm
    rounds: int

    @property
    def batch_size(self) -> int:
        return FULL_BATCH if self.algorithm is Algorithm.FEDSGD else BATCH_SIZE


@dataclass(frozen=True)
class Options:
    """What every run shares."""

    model: Model
    lr: float
    fedsgd_lr: float
    mu: float
    eval_every: int
    backend: BackendKind = BackendKind.SEQUENTIAL  # how a round's participants are run
    threads: int = 1  # simulation.threads: torch intra-op threads
    seed: int = 0


@dataclass(frozen=True)
class RunResult:
    setting: Setting
    curve: tuple[tuple[int, float], ...]  # (round, central test accuracy) at evaluated rounds
    wall_seconds: float  # Experiment.train end to end: local training, aggregation, evaluation
    fit_seconds: float  # the fit rounds alone (sum of RoundReport.seconds)

    @property
    def final_accuracy(self) -> float:
        return self.curve[-1][1]

    @property
    def tail_accuracy(self) -> float:
        """Mean accuracy of the last ``TAIL`` evaluations (fewer if the run is shorter)."""
        tail = [acc for _, acc in self.curve[-TAIL:]]
        return sum(tail) / len(tail)

    def rounds_to(self, target: float) -> int | None:
        """The first evaluated round whose accuracy reaches ``target``; None if none does.

        McMahan et al. count rounds the same way (best accuracy so far reaching the target).
        """
        return next((r for r, acc in self.curve if acc >= target), None)


def settings(rounds_e1: int, rounds_e5: int, fedsgd_rounds: int) -> list[Setting]:
    """FedSGD first (the speedup baseline), then the 2 x 2 x 3 grid."""
    grid = [
        Setting(part, epochs, alg, rounds_e1 if epochs == 1 else rounds_e5)
        for part in (Partition.IID, Partition.SHARDS)
        for epochs in (1, 5)
        for alg in (Algorithm.FEDAVG, Algorithm.FEDPROX, Algorithm.SCAFFOLD)
    ]
    baseline = [
        Setting(part, 1, Algorithm.FEDSGD, fedsgd_rounds)
        for part in (Partition.IID, Partition.SHARDS)
    ]
    return (baseline if fedsgd_rounds else []) + grid


def run_config(setting: Setting, options: Options) -> RunConfig:
    data: dict[str, Any] = {
        "name": "fashion_mnist",
        "num_clients": NUM_CLIENTS,
        "local_test_fraction": 0.0,  # as in the paper, clients train on all their 600 images
    }
    if setting.partition is Partition.SHARDS:
        data |= {"partition": "shards", "shards_per_client": 2}
    model: dict[str, Any] = {"name": "mlp", "hidden": [200, 200]}
    if options.model is Model.CNN:
        model = {"name": "cnn", "channels": [32, 64], "hidden": [512]}
    strategy: dict[str, Any] = {"name": "fedavg", "clients_per_round": CLIENTS_PER_ROUND}
    if setting.algorithm is Algorithm.FEDPROX:
        strategy |= {"name": "fedprox", "mu": options.mu}
    elif setting.algorithm is Algorithm.SCAFFOLD:
        strategy |= {"name": "scaffold"}
    lr = options.fedsgd_lr if setting.algorithm is Algorithm.FEDSGD else options.lr
    return parse_config(
        {
            "seed": options.seed,
            "rounds": setting.rounds,
            "data": data,
            "model": model,
            "client": {"epochs": setting.epochs, "batch_size": setting.batch_size, "lr": lr},
            "strategy": strategy,
            "evaluation": {"every": options.eval_every, "central": True},
            "simulation": {"backend": options.backend.value, "threads": options.threads},
        },
        source=f"bench setting {setting}",
    )


def run_one(setting: Setting, options: Options) -> RunResult:
    """What ``experiment.simulate`` does, without writing a run directory every round."""
    config = run_config(setting, options)
    exp = build(config)
    for note in exp.notes:  # e.g. a fallback from the vectorized backend
        print(f"  note: {note}", flush=True)
    curve: list[tuple[int, float]] = []
    fit_seconds = 0.0

    def on_round(progress: RoundProgress) -> None:
        nonlocal fit_seconds
        report = progress.report
        fit_seconds += report.seconds
        if report.central is not None:
            curve.append((report.round, report.central.accuracy))
            if report.round % 10 == 0:
                print(f"    round {report.round:>4}  acc {report.central.accuracy:.4f}", flush=True)

    start = time.perf_counter()
    exp.train(on_round)
    return RunResult(setting, tuple(curve), time.perf_counter() - start, fit_seconds)


def _baseline(results: Sequence[RunResult], partition: Partition) -> RunResult | None:
    return next(
        (
            r
            for r in results
            if r.setting.algorithm is Algorithm.FEDSGD and r.setting.partition is partition
        ),
        None,
    )


def _rounds_cell(result: RunResult, target: float, baseline: RunResult | None) -> str:
    """``rounds (speedup over FedSGD)``; ``>R`` when the target was not reached in R rounds."""
    reached = result.rounds_to(target)
    if reached is None:
        return f">{result.setting.rounds}"
    if baseline is None or baseline is result:
        return str(reached)
    base = baseline.rounds_to(target)
    if base is None:  # FedSGD needs more than its whole budget: a lower bound
        return f"{reached} (>{baseline.setting.rounds / reached:.1f}x)"
    return f"{reached} ({base / reached:.1f}x)"


def markdown_table(results: Sequence[RunResult], targets: Sequence[float] = TARGETS) -> str:
    head = ["partition", "E", "B", "algorithm", "rounds R"]
    head += [f"rounds to {t:.2f}" for t in targets]
    head += ["final acc", f"mean acc, last {TAIL} evals", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s, base = r.setting, _baseline(results, r.setting.partition)
        batch = "all" if s.algorithm is Algorithm.FEDSGD else str(s.batch_size)
        cells = [s.partition.value, str(s.epochs), batch, s.algorithm.value, str(s.rounds)]
        cells += [_rounds_cell(r, t, base) for t in targets]
        cells += [f"{r.final_accuracy:.4f}", f"{r.tail_accuracy:.4f}", f"{r.wall_seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _git_commit() -> str | None:
    """The checkout's commit (``+dirty`` with local changes); None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def results_json(
    results: Sequence[RunResult], options: Options, commit: str | None
) -> dict[str, Any]:
    return {
        "commit": commit,  # when the run started: the checkout may move during it
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
        },
        "runs": [
            {
                "config": run_config(r.setting, options).model_dump(mode="json"),
                "algorithm": r.setting.algorithm.value,
                "rounds_to": {f"{t:.2f}": r.rounds_to(t) for t in TARGETS},
                "final_accuracy": r.final_accuracy,
                "tail_accuracy": r.tail_accuracy,
                "wall_seconds": r.wall_seconds,
                "fit_seconds": r.fit_seconds,
                "curve": [list(point) for point in r.curve],
            }
            for r in results
        ],
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=100, help="rounds of the E=1 runs")
    p.add_argument("--rounds-e5", type=int, default=50, help="rounds of the E=5 runs")
    p.add_argument("--fedsgd-rounds", type=int, default=400, help="FedSGD rounds; 0 skips it")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of everything")
    p.add_argument(
        "--model",
        choices=[m.value for m in Model],
        default=Model.MLP.value,
        help="mlp: the 2NN (default); cnn: the paper CNN, ~15x slower per round",
    )
    p.add_argument("--lr", type=float, default=0.05, help="client SGD lr (B=10 runs)")
    p.add_argument("--fedsgd-lr", type=float, default=0.3, help="client lr of FedSGD")
    p.add_argument("--mu", type=float, default=0.01, help="FedProx proximal coefficient")
    p.add_argument("--eval-every", type=int, default=1, help="central evaluation period")
    p.add_argument("--out", type=Path, help="write the table to OUT and the JSON beside it")
    p.add_argument(
        "--backend",
        choices=[BackendKind.SEQUENTIAL.value, BackendKind.VECTORIZED.value],
        default=BackendKind.SEQUENTIAL.value,
        help="simulation backend; fedswarm defaults to vectorized, which was about 2x slower "
        "for this 2NN with B=10 on 2 cores",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix == ".json":
        parser.error("--out names the markdown table; the JSON goes beside it as .json")
    options = Options(
        Model(args.model),
        args.lr,
        args.fedsgd_lr,
        args.mu,
        args.eval_every,
        BackendKind(args.backend),
        args.threads,
    )
    rounds = (3, 3, 3) if args.quick else (args.rounds, args.rounds_e5, args.fedsgd_rounds)
    commit = _git_commit()
    print(f"fedswarm at {commit}, backend {options.backend.value}", flush=True)
    results: list[RunResult] = []
    start = time.perf_counter()
    for setting in settings(*rounds):
        name = f"{setting.partition.value} E={setting.epochs} {setting.algorithm.value}"
        print(f"{name}: {setting.rounds} rounds", flush=True)
        result = run_one(setting, options)
        results.append(result)
        print(f"  final acc {result.final_accuracy:.4f} in {result.wall_seconds:.0f}s", flush=True)
    table = markdown_table(results)
    print(table)
    print(f"total {time.perf_counter() - start:.0f}s", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table, encoding="utf-8")
        payload = json.dumps(results_json(results, options, commit), indent=1)
        args.out.with_suffix(".json").write_text(payload + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
