"""Simulation engine benchmark: fedswarm's backends, a hand-written PyTorch loop, and Flower.

Workloads (FedAvg, SGD, E = 1, central test accuracy after the last round only):

- W1: digits (standardised, 80/20 split), 100 IID clients, MLP 64-128-10, lr 0.05, B = 10,
  10 clients a round, 50 rounds (``bench/configs/w1.toml``);
- W2: the same with 1,000 clients (one or two samples each), 100 a round, 10 rounds
  (``bench/configs/w2.toml``);
- W3: Fashion-MNIST, CNN with channels (8, 16) and a 64-unit dense layer, 10,000 clients,
  1,000 a round, B = 20, lr 0.05, 5 rounds. The issue asks for Dirichlet(0.3) label skew,
  but fedswarm's partitioner cannot give 10,000 clients >= 2 samples each by redrawing
  (see BENCHMARKS.md), so W3 uses the closest partition that works at that scale:
  McMahan's shards, 2 label-sorted shards of 3 images per client.

Systems: fedswarm's ``vectorized``, ``sequential``, ``process`` (2 workers) and, when
fedswarm has it, ``ray`` backend; ``plain``, a FedAvg loop written by hand in PyTorch on
the same batches; ``flower``, Flower's simulation (W1 and W2 only). Each (workload,
system) runs in a fresh child process of this script, whose process tree's resident
memory is sampled every 50 ms from ``/proc`` (Linux; children of Ray included).

    python bench/simulation.py --out /tmp/simulation.md   # everything, ~4.5 min on 2 cores
    python bench/simulation.py --quick                    # smoke run with tiny settings
"""

from __future__ import annotations

import argparse
import enum
import importlib.metadata
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fedswarm.config import BackendKind, RunConfig, load_config, parse_config
from fedswarm.data.arrays import ArrayDataset, FederatedDataset
from fedswarm.data.registry import load_dataset
from fedswarm.driver import RoundReport
from fedswarm.experiment import build, build_strategy, data_spec
from fedswarm.learner import LocalTraining
from fedswarm.models import model_factory
from fedswarm.pytorch.learner import batch_indices
from fedswarm.sampling import UniformSampler
from fedswarm.seeding import client_seed, round_rng
from fedswarm.simulation.participants import configured_dataset

__all__ = ["Measured", "Row", "System", "TreeSampler", "main", "markdown_report"]

CONFIGS = Path(__file__).resolve().parent / "configs"
SAMPLE_EVERY_S = 0.05
MIB = 1 << 20

W3 = {
    "seed": 0,
    "rounds": 5,
    "data": {
        "name": "fashion_mnist",
        "num_clients": 10_000,
        "partition": "shards",  # Dirichlet(0.3) cannot be drawn for 10,000 clients
        "shards_per_client": 2,
        "local_test_fraction": 0.0,
    },
    "model": {"name": "cnn", "channels": [8, 16], "hidden": [64]},
    "client": {"epochs": 1, "batch_size": 20, "lr": 0.05},
    "strategy": {"name": "fedavg", "clients_per_round": 1_000},
    "evaluation": {"every": 5},
    "simulation": {"backend": "vectorized", "workers": 2, "threads": 1},
}
# --quick: (clients, clients a round, rounds) per workload; None keeps the full value.
QUICK = {"w1": (None, None, 2), "w2": (None, None, 2), "w3": (1_000, 100, 1)}


class System(enum.Enum):
    VECTORIZED = "vectorized"
    SEQUENTIAL = "sequential"
    PROCESS = "process"
    RAY = "ray"
    PLAIN = "plain"  # FedAvg by hand in PyTorch: the no-framework reference
    FLOWER = "flower"

    @property
    def is_fedswarm(self) -> bool:
        return self.value in {k.value for k in BackendKind} or self is System.RAY


FLOWER_WORKLOADS = ("w1", "w2")


# --------------------------------------------------------------------------- workloads


def workload(name: str, quick: bool) -> RunConfig:
    """The fedswarm config of workload ``name``; the plain loop and Flower read it too."""
    config = parse_config(W3, "W3") if name == "w3" else load_config(CONFIGS / f"{name}.toml")
    if not quick:
        return config
    clients, per_round, rounds = QUICK[name]
    raw = config.model_dump(mode="json")
    raw["rounds"] = rounds
    raw["evaluation"]["every"] = rounds
    raw["data"]["num_clients"] = clients or raw["data"]["num_clients"]
    raw["strategy"]["clients_per_round"] = per_round or raw["strategy"]["clients_per_round"]
    return parse_config(raw, f"{name} --quick")


def sampler_of(config: RunConfig) -> UniformSampler:
    """The client sampler fedswarm builds from ``config`` (``experiment.build_strategy``)."""
    s = config.strategy
    return UniformSampler(s.fraction, s.min_clients, s.clients_per_round)


# --------------------------------------------------------------------------- child side


@dataclass(frozen=True)
class Measured:
    """What a child process reports about its run."""

    round_seconds: tuple[float, ...]  # each fit round, sampling to aggregation
    clients_trained: int
    accuracy: float  # central test accuracy after the last round
    note: str = ""


def run_fedswarm(config: RunConfig) -> Measured:
    """``fedswarm run`` minus the run directory."""
    exp = build(config)
    reports: list[RoundReport] = []
    exp.train(lambda progress: reports.append(progress.report))
    final = reports[-1].central
    assert final is not None, "the workloads evaluate after the last round"
    return Measured(
        tuple(r.seconds for r in reports),
        sum(r.num_clients for r in reports),
        final.accuracy,
        "; ".join(exp.notes),
    )


def local_sgd(model: nn.Module, data: ArrayDataset, training: LocalTraining, seed: int) -> float:
    """Plain SGD over ``batch_indices`` (fedswarm's batch order); the mean batch loss.

    The step is written out (``w -= lr * g``, what ``torch.optim.SGD`` does without
    momentum): building a torch optimiser imports ``torch._dynamo`` on first use, a
    second or more that would land in the first round's time.
    """
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    params = list(model.parameters())
    loss_sum, steps = 0.0, 0
    for idx in batch_indices(len(data), training, seed):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.add_(g, alpha=-training.lr)
        loss_sum, steps = loss_sum + float(loss.detach()), steps + 1
    return loss_sum / max(steps, 1)


@torch.no_grad()
def accuracy(model: nn.Module, test: ArrayDataset) -> float:
    logits = model.eval()(torch.from_numpy(test.x))
    return int((logits.argmax(dim=1) == torch.from_numpy(test.y)).sum()) / len(test)


def initial_model(config: RunConfig, dataset: FederatedDataset) -> nn.Module:
    """The model fedswarm starts from: ``TorchLearner.init_params(seed)`` seeds the same way."""
    torch.manual_seed(config.seed)
    return model_factory(config.model, dataset)()


def run_plain(config: RunConfig) -> Measured:
    """FedAvg as a PyTorch user would write it, with no framework: the reference.

    It borrows fedswarm's dataset, client sampler, seeds and batch order, and nothing
    else, so that it trains on exactly the batches fedswarm's backends train on: then any
    difference in time or accuracy is the framework's, not the data's. The local loop and
    the example-weighted average are written out here in torch.
    """
    torch.set_num_threads(config.simulation.threads)
    dataset = load_dataset(data_spec(config.data, config.seed))
    model, sampler, seed = initial_model(config, dataset), sampler_of(config), config.seed
    training = build_strategy(config).training
    weights = [p.detach().clone() for p in model.parameters()]  # the global model
    seconds, trained = [], 0
    for rnd in range(1, config.rounds + 1):
        start = time.perf_counter()
        total = [torch.zeros_like(w) for w in weights]
        examples = 0
        for cid in sampler.sample(dataset.client_ids(), round_rng(seed, rnd, "sample")):
            data = dataset.client(cid).train
            with torch.no_grad():  # start from the global model
                for p, w in zip(model.parameters(), weights, strict=True):
                    p.copy_(w)
            local_sgd(model.train(), data, training, client_seed(seed, rnd, cid))
            with torch.no_grad():
                for t, p in zip(total, model.parameters(), strict=True):
                    t.add_(p, alpha=len(data))
            examples += len(data)
            trained += 1
        weights = [t / examples for t in total]
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(w)
    return Measured(tuple(seconds), trained, accuracy(model, dataset.central_test))


def run_flower(config: RunConfig) -> Measured:
    """Flower's simulation (``run_simulation`` with a ``ClientApp`` and a ``ServerApp``
    running the message-API ``FedAvg``), one CPU per client, on the same partitions.

    Clients train with :func:`local_sgd`, the plain loop's, so Flower's overhead is all
    that differs; Flower samples clients its own way (Python's ``random``). A round's time
    is from the end of one ``evaluate_fn`` call (Flower calls it after every round) to the
    start of the next, which leaves out the central evaluation done after the last round.
    """
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # this machine has no network
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from flwr.app import (  # type: ignore[import-not-found, unused-ignore]
        ArrayRecord,
        Context,
        Message,
        MetricRecord,
        RecordDict,
    )
    from flwr.clientapp import ClientApp  # type: ignore[import-not-found, unused-ignore]
    from flwr.serverapp import Grid, ServerApp  # type: ignore[import-not-found, unused-ignore]
    from flwr.serverapp.strategy import FedAvg  # type: ignore[import-not-found, unused-ignore]
    from flwr.simulation import run_simulation  # type: ignore[import-not-found, unused-ignore]

    spec = data_spec(config.data, config.seed)
    dataset = load_dataset(spec)
    n, training = len(dataset.client_ids()), build_strategy(config).training
    k = sampler_of(config).count(n)
    marks: list[float] = []  # entry and exit of every evaluate_fn call
    final: list[float] = []
    replies: list[int] = []  # per round: the training replies FedAvg aggregated

    def train(msg: Message, context: Context) -> Message:  # runs in a Ray actor
        torch.set_num_threads(1)
        data_in_actor = configured_dataset(spec)  # loaded once per actor process
        cid = data_in_actor.client_ids()[int(context.node_config["partition-id"])]
        model = model_factory(config.model, data_in_actor)()
        model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        data = data_in_actor.client(cid).train
        rnd = msg.content.config_records["config"]["server-round"]
        assert isinstance(rnd, int), "FedAvg sends the round number"
        loss = local_sgd(model.train(), data, training, client_seed(config.seed, rnd, cid))
        metrics = MetricRecord({"train_loss": loss, "num-examples": len(data)})
        reply = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
        return Message(reply, reply_to=msg)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        marks.append(time.perf_counter())
        result = None
        if server_round == config.rounds:
            model = model_factory(config.model, dataset)()
            model.load_state_dict(arrays.to_torch_state_dict())
            final.append(accuracy(model, dataset.central_test))
            result = MetricRecord({"accuracy": final[-1]})
        marks.append(time.perf_counter())
        return result

    def count_replies(records: list[RecordDict], weight_key: str) -> MetricRecord:
        replies.append(len(records))
        return MetricRecord({"replies": len(records)})

    def server_main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=k / n,
            fraction_evaluate=0.0,
            min_train_nodes=k,
            min_available_nodes=n,
            train_metrics_aggr_fn=count_replies,
        )
        initial = ArrayRecord(initial_model(config, dataset).state_dict())
        strategy.start(
            grid=grid, initial_arrays=initial, num_rounds=config.rounds, evaluate_fn=evaluate
        )

    client_app, server_app = ClientApp(), ServerApp()
    client_app.train()(train)
    server_app.main()(server_main)
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=n,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    # marks: [enter0, exit0, enter1, exit1, ...]: round r runs from exit(r-1) to enter(r)
    seconds = tuple(marks[2 * r] - marks[2 * r - 1] for r in range(1, config.rounds + 1))
    return Measured(seconds, sum(replies), final[0], "Flower samples its own clients")


def run_system(system: System, config: RunConfig) -> Measured:
    if system is System.PLAIN:
        return run_plain(config)
    if system is System.FLOWER:
        return run_flower(config)
    raw = config.model_dump(mode="json")
    raw["simulation"]["backend"] = system.value
    return run_fedswarm(parse_config(raw, f"backend {system.value}"))


# --------------------------------------------------------------------------- parent side


PAGE, TICK = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
Process = tuple[int, str, float, int]  # parent pid, start time, CPU seconds, resident bytes


def process_table() -> dict[int, Process]:
    """Every process on the machine, from ``/proc/<pid>/stat`` (see proc(5))."""
    table: dict[int, Process] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        f = stat.rsplit(")", 1)[1].split()  # after the command name; f[0] is field 3
        cpu = (int(f[11]) + int(f[12])) / TICK  # utime + stime
        table[int(entry.name)] = (int(f[1]), f[19], cpu, int(f[21]) * PAGE)
    return table


def descendants(table: dict[int, Process], root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree += [pid] if pid in table else []
        todo += children.get(pid, [])
    return tree


@dataclass
class TreeSampler:
    """Every ``SAMPLE_EVERY_S``, in a thread: the resident memory of ``pid``'s process tree
    (summed; pages shared by several processes, such as torch's libraries, count once per
    process) and each tree process's CPU time so far (a process's last ~50 ms before it
    exits are missed)."""

    pid: int
    peak_rss: int = 0
    _cpu: dict[tuple[int, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            table = process_table()
            tree = descendants(table, self.pid)
            self.peak_rss = max(self.peak_rss, sum(table[p][3] for p in tree))
            self._cpu.update({(p, table[p][1]): table[p][2] for p in tree})
            self._stop.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())


class OtherLoad:
    """CPU seconds the machine spent outside a sampled tree and this process (the
    sampler's own cost): timings taken on a loaded machine mean little, so every row
    says how loaded the machine was."""

    def __init__(self) -> None:
        self._start = self._readings()

    @staticmethod
    def _readings() -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (user + nice + system + irq + softirq + steal) / TICK, own.ru_utime + own.ru_stime

    def seconds(self, tree: TreeSampler) -> float:
        (busy0, own0), (busy1, own1) = self._start, self._readings()
        return max(0.0, busy1 - busy0 - (own1 - own0) - tree.cpu_seconds)


@dataclass(frozen=True)
class Row:
    workload: str
    system: System
    measured: Measured | None
    wall_seconds: float = 0.0  # the child process, start to exit: imports and setup included
    peak_rss: int = 0  # bytes, process tree
    other_load: float = 0.0  # CPU cores busy outside the child's tree meanwhile (mean)
    status: str = "ok"  # otherwise why there is no measurement

    @property
    def rounds_seconds(self) -> float:
        return sum(self.measured.round_seconds) if self.measured else float("nan")

    @property
    def later_rounds_seconds(self) -> float:
        """Rounds 2..R: without the first round's warm-up (worker pools, Ray actors)."""
        return sum(self.measured.round_seconds[1:]) if self.measured else float("nan")

    @property
    def updates_per_second(self) -> float:
        return self.measured.clients_trained / self.rounds_seconds if self.measured else 0.0


def skip_reason(name: str, system: System) -> str | None:
    """Why ``system`` does not run ``name`` here, or None when it does."""
    if system is System.FLOWER:
        if name not in FLOWER_WORKLOADS:
            return "not run: Flower runs W1 and W2 only"
        try:
            importlib.metadata.version("flwr")
        except importlib.metadata.PackageNotFoundError:
            return 'skipped: flwr is not installed (pip install -e ".[bench]")'
    if system is System.RAY:
        import fedswarm.simulation

        if not hasattr(fedswarm.simulation, "RayBackend") or "ray" not in {
            k.value for k in BackendKind
        }:
            return "skipped: fedswarm.simulation has no RayBackend (or config no 'ray' backend)"
    return None


def run_child(name: str, system: System, quick: bool, timeout: float, logs: Path) -> Row:
    """Run one (workload, system) in a fresh process, sampling its tree's memory."""
    if (why := skip_reason(name, system)) is not None:
        return Row(name, system, None, status=why)
    result = logs / f"{name}-{system.value}.json"
    log = logs / f"{name}-{system.value}.log"
    argv = [sys.executable, __file__, "--child", system.value, "--workloads", name]
    argv += ["--result", str(result)] + (["--quick"] if quick else [])
    start, load = time.perf_counter(), OtherLoad()
    with log.open("w") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeSampler(child.pid)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child's own session: its tree only
            child.wait()
            code = None
        sampler.stop()
    wall, peak = time.perf_counter() - start, sampler.peak_rss
    other = load.seconds(sampler) / wall
    if code != 0:
        status = f"timed out after {timeout:.0f} s" if code is None else f"failed (exit {code})"
        tail = log.read_text(errors="replace").splitlines()[-3:]
        why = f"{status}: {' / '.join(tail)}"[:300]
        return Row(name, system, None, wall, peak, other, why)
    raw = json.loads(result.read_text())
    measured = Measured(
        tuple(raw["round_seconds"]), raw["clients_trained"], raw["accuracy"], raw["note"]
    )
    return Row(name, system, measured, wall, peak, other)


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": f"{os.cpu_count()} cores, {cpu}",
        "memory": f"{mem_kib / (1 << 20):.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flwr": version("flwr"),
        "ray": version("ray"),
    }


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def results_table(rows: Sequence[Row]) -> str:
    head = ["workload", "system", "wall s", "rounds s", "rounds 2..R s", "client updates/s"]
    head += ["peak RSS MiB", "final acc", "other load", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.measured is None:
            cells = [r.workload, r.system.value, *(["-"] * 7), r.status]
        else:
            cells = [
                r.workload,
                r.system.value,
                f"{r.wall_seconds:.1f}",
                f"{r.rounds_seconds:.2f}",
                f"{r.later_rounds_seconds:.2f}",
                f"{r.updates_per_second:.0f}",
                f"{r.peak_rss / MIB:.0f}",
                f"{r.measured.accuracy:.4f}",
                f"{r.other_load:.2f}",
                r.measured.note,
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _targets(name: str, row: Row, plain: Row | None, flower: Row | None) -> str:
    """Which of the issue's targets ``row`` misses (only those that could be checked)."""
    missed, limit = [], 1.3 if name == "w3" else 1.15
    if plain and plain.measured and row.measured:
        if row.rounds_seconds > limit * plain.rounds_seconds:
            missed.append(f"rounds > {limit}x plain")
        if name != "w3" and abs(row.measured.accuracy - plain.measured.accuracy) > 0.01:
            missed.append("acc off plain by > 0.01")
    if flower and flower.measured and row.measured:
        if flower.rounds_seconds < 50 * row.rounds_seconds:
            missed.append("< 50x faster than Flower")
        if row.peak_rss > flower.peak_rss / 4:
            missed.append("RSS > 1/4 of Flower's")
    if name == "w3" and row.peak_rss >= 2 << 30:
        missed.append("RSS >= 2 GiB")
    return "missed: " + "; ".join(missed) if missed else "met"


def _ratio(a: float, b: float, digits: int = 2) -> str:
    return _fmt(a / b, digits) if b > 0 else "n/a"


def _ratio_cells(r: Row, plain: Row | None, flower: Row | None) -> list[str]:
    """rounds / plain and Flower / fedswarm, each as "all rounds (rounds 2..R)"."""
    cells = []
    for num, den, digits in ((r, plain, 2), (flower, r, 1)):
        if num is None or den is None:
            cells.append("n/a")
            continue
        whole = _ratio(num.rounds_seconds, den.rounds_seconds, digits)
        later = _ratio(num.later_rounds_seconds, den.later_rounds_seconds, digits)
        cells.append(f"{whole} ({later})")
    return cells


def ratios_table(rows: Sequence[Row]) -> str:
    head = ["workload", "fedswarm backend", "rounds / plain", "Flower rounds / fedswarm"]
    head += ["RSS / Flower RSS", "acc - plain acc", "targets (all rounds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == name]
        by = {r.system: r for r in mine if r.measured is not None}
        plain, flower = by.get(System.PLAIN), by.get(System.FLOWER)
        for r in (r for r in mine if r.system.is_fedswarm and r.measured is not None):
            assert r.measured is not None
            acc = "n/a"
            if plain is not None and plain.measured is not None:
                acc = f"{r.measured.accuracy - plain.measured.accuracy:+.4f}"
            cells = [name, r.system.value, *_ratio_cells(r, plain, flower)]
            cells += [_ratio(r.peak_rss, flower.peak_rss) if flower else "n/a", acc]
            cells.append(_targets(name, r, plain, flower))
            lines.append("| " + " | ".join(cells) + " |")
    legend = "Ratios of all rounds' time, and in brackets of rounds 2..R only.\n\n"
    return legend + "\n".join(lines) + "\n"


LEGEND = (
    "wall: the child process from start to exit (imports, data loading, Ray start-up "
    "included); rounds: the sum of the fit rounds' times (sampling to aggregation), "
    "evaluation excluded; rounds 2..R: the same without round 1, where worker pools and "
    "Ray actors start; client updates/s: clients trained / rounds; peak RSS: the child "
    f"and all its descendants, summed, sampled every {SAMPLE_EVERY_S * 1000:.0f} ms; other "
    "load: mean CPU cores that other processes on the machine used meanwhile."
)


def markdown_report(rows: Sequence[Row], command: str, info: dict[str, str]) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in info.items())
    return (
        f"Machine:\n\n{facts}\n\nCommand:\n\n```bash\n{command}\n```\n\n"
        f"{results_table(rows)}\n{LEGEND}\n\n{ratios_table(rows)}"
    )


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--workloads", default="w1,w2,w3", help="comma-separated: w1,w2,w3")
    p.add_argument(
        "--systems",
        default=",".join(s.value for s in System),
        help="comma-separated: " + ",".join(s.value for s in System),
    )
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    p.add_argument("--out", type=Path, help="write the report to OUT and the JSON beside it")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per child run")
    p.add_argument("--child", choices=[s.value for s in System], help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p


def _split(text: str, allowed: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if bad := [t for t in items if t not in allowed]:
        parser.error(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = _split(args.workloads, ("w1", "w2", "w3"), parser)
    if args.child is not None:  # one measured run, in this fresh process
        measured = run_system(System(args.child), workload(names[0], args.quick))
        args.result.write_text(json.dumps(asdict(measured)), encoding="utf-8")
        return 0
    systems = [System(s) for s in _split(args.systems, [s.value for s in System], parser)]
    rows: list[Row] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedswarm-bench-") as tmp:
        for name in names:
            for system in systems:
                print(f"{name} {system.value} ...", flush=True)
                rows.append(row := run_child(name, system, args.quick, args.timeout, Path(tmp)))
                print(f"  {row.status}" + (_progress(row) if row.measured else ""), flush=True)
    command = "python bench/simulation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = markdown_report(rows, command.strip(), machine())
    print(report)
    print(f"total {time.perf_counter() - start:.0f}s", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        payload = {"machine": machine(), "rows": [_row_json(r) for r in rows]}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def _progress(row: Row) -> str:
    return (
        f": wall {row.wall_seconds:.1f}s rounds {row.rounds_seconds:.2f}s peak "
        f"{row.peak_rss / MIB:.0f} MiB, other processes busy {row.other_load:.2f} cores"
    )


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "workload": row.workload,
        "system": row.system.value,
        "status": row.status,
        "wall_seconds": row.wall_seconds,
        "rounds_seconds": row.rounds_seconds if row.measured else None,
        "peak_rss_bytes": row.peak_rss,
        "other_load_cores": row.other_load,
        "measured": asdict(row.measured) if row.measured else None,
    }


if __name__ == "__main__":
    sys.exit(main())
