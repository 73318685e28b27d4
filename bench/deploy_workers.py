"""The processes of ``bench/deployment.py``: one coordinator and its participants.

The benchmark starts each as ``python -m bench.deploy_workers ROLE ...`` from the
repository root and talks to it over stdin/stdout, one JSON object a line (logs go to
stderr). A participant builds its :class:`~fedswarm.client.ClientApp`, says
``{"ready": ...}`` and then answers commands until its stdin closes:

- ``{"cmd": "fit"}``: one local fit on its own data, timed -> ``{"seconds": ...}``;
- ``{"cmd": "raw", "port": P, "bytes": B, "reps": R, "tls": bool}``: the raw-copy
  baseline, an echo of B bytes, R times, for the copier at port P (``bench/deploy_copy.py``)
  -> ``{"done": true}``;
- ``{"cmd": "serve", "address": "HOST:PORT"}``: be a participant of the coordinator there
  until it ends the run -> ``{"fit_seconds": [...], "peak_rss_mib": ...}``.

The coordinator says ``{"port": P}`` once it listens, waits for its participants, runs the
rounds, ends the run and says what it measured, its own peak RSS included: it runs in its
own process so that nothing else counts towards that figure.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import resource
import statistics
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.deploy_copy import echo, node_paths, tls_context
from fedswarm.aggregation import MeanAccumulator
from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.deploy.node import peer_check, tls_identity
from fedswarm.driver import RoundPolicy, run_rounds
from fedswarm.learner import Learner
from fedswarm.messages import ClientId, FitIns, FitRes, Outcome
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.reports import RoundReport
from fedswarm.security.pki import Role, TrustStore
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transport.base import Fold, Request
from fedswarm.transport.grpc.client import Backoff, run_participant
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.server import GrpcServerTransport
from fedswarm.wire import decode, encode

if TYPE_CHECKING:
    from torch import nn

__all__ = ["NumpyLearner", "TimedLearner", "main", "mlp_params"]

RUN = RunInfo("bench-deployment", seed=0)
SERVER_NAME = "coordinator"


def mlp_params(dims: Sequence[int], seed: int) -> Params:
    """An MLP ``dims[0] -> dims[1] -> ... `` in ``nn.Sequential``'s state-dict layout,
    drawn with numpy: the coordinator needs the layout and some values, not torch."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        scale = np.float32(1 / np.sqrt(fan_in))
        arrays[f"{2 * i}.weight"] = rng.standard_normal((fan_out, fan_in), np.float32) * scale
        arrays[f"{2 * i}.bias"] = np.zeros(fan_out, np.float32)
    return Params.from_arrays(arrays)


def torch_mlp(dims: Sequence[int]) -> nn.Module:
    """The same MLP as ``mlp_params`` describes, in torch (ReLU between layers)."""
    from torch import nn

    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(dims):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@dataclass(frozen=True)
class NumpyLearner:
    """A stand-in learner without torch (for the memory runs, where 50 participants each
    importing torch would crowd the machine): one "step" that shrinks the weights."""

    dims: tuple[int, ...]

    def init_params(self, seed: int) -> Params:
        return mlp_params(self.dims, seed)

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        return LocalFit(params.flat * np.float32(1 - training.lr), len(data), 1, 0.0)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return Evaluation(0.0, 0.0, len(data))


@dataclass(frozen=True)
class TimedLearner:
    """``inner``, with the wall time of every ``fit`` recorded in ``fit_seconds``."""

    inner: Learner
    fit_seconds: list[float] = field(default_factory=list)

    def init_params(self, seed: int) -> Params:
        return self.inner.init_params(seed)

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        start = time.perf_counter()
        fit = self.inner.fit(params, data, training, correction, seed)
        self.fit_seconds.append(time.perf_counter() - start)
        return fit

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return self.inner.evaluate(params, data)


@dataclass(frozen=True)
class FixedApp:
    """An app factory: this participant is ``app`` whatever run it joins."""

    app: ClientApp

    def __call__(self, spec: RunSpec) -> ClientApp:
        return self.app


def training(args: argparse.Namespace) -> LocalTraining:
    return LocalTraining(batch_size=args.batch_size, lr=0.01, epochs=1)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


# -- participant ---------------------------------------------------------------------------


def build_app(args: argparse.Namespace) -> tuple[ClientApp, TimedLearner]:
    dims = tuple(args.dims)
    inner: Learner
    if args.learner == "torch":
        import torch

        from fedswarm.pytorch.learner import TorchLearner

        torch.set_num_threads(1)  # 10 participants share the machine's cores
        inner = TorchLearner(functools.partial(torch_mlp, dims))
    else:
        inner = NumpyLearner(dims)
    rng = np.random.default_rng(zlib.crc32(args.name.encode()))
    x = rng.standard_normal((args.samples, dims[0]), np.float32)
    y = rng.integers(0, dims[-1], args.samples)
    data = ClientData(ArrayDataset(x, y), ArrayDataset(x[:1], y[:1]))
    learner = TimedLearner(inner)
    return ClientApp(args.name, learner, data), learner


def fit_instruction(app: ClientApp, args: argparse.Namespace) -> FitIns:
    """A fit instruction as the coordinator would send it in the first round."""
    strategy = fedavg(training(args))
    state = strategy.init(mlp_params(args.dims, RUN.seed))
    [(_, ins)] = strategy.configure_fit(state, [app.client_id], RUN)
    return ins


def timed_fit(app: ClientApp, ins: FitIns) -> float:
    """Seconds to answer ``ins`` without a network: the participant's compute."""
    start = time.perf_counter()
    app.handle(ins, {})
    return time.perf_counter() - start


def participant(args: argparse.Namespace) -> None:
    app, learner = build_app(args)
    ins: FitIns | None = None  # built at the first "fit": the memory runs never ask
    emit(ready=args.name)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "fit":
            ins = ins or fit_instruction(app, args)
            emit(seconds=timed_fit(app, ins))
        elif cmd["cmd"] == "raw":
            tls = tls_context(node_paths(args.pki, args.name, Role.CLIENT)) if cmd["tls"] else None
            echo(cmd["port"], cmd["bytes"], cmd["reps"], tls)
            emit(done=True)
        elif cmd["cmd"] == "serve":
            learner.fit_seconds.clear()
            paths = node_paths(args.pki, args.name, Role.CLIENT)
            backoff = Backoff(initial_s=0.1, max_s=1.0, connect_timeout_s=30.0)
            cpu = time.process_time()
            run_participant(cmd["address"], tls_identity(paths), FixedApp(app), backoff=backoff)
            cpu = time.process_time() - cpu
            emit(fit_seconds=learner.fit_seconds, peak_rss_mib=peak_rss_mib(), cpu_seconds=cpu)
        else:
            raise ValueError(f"unknown command {cmd!r}")


# -- coordinator ---------------------------------------------------------------------------


@dataclass
class Traced:
    """The coordinator's transport, noting when each round's first upload is folded (by then
    every instruction of the round is in gRPC's hands) and the RSS then and after the round."""

    inner: GrpcServerTransport
    first_upload_s: list[float] = field(default_factory=list)  # since the exchange began
    exchange_s: list[float] = field(default_factory=list)
    first_upload_rss_mib: list[float] = field(default_factory=list)
    round_rss_mib: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # this process's, at each round end
    reports: list[RoundReport] = field(default_factory=list)

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        if fold is None:
            return self.inner.exchange(requests, timeout=timeout)
        seen, fold_inner, start = len(self.first_upload_s), fold, time.perf_counter()

        def noted(outcome: Outcome) -> Outcome:
            if len(self.first_upload_s) == seen:
                self.first_upload_s.append(time.perf_counter() - start)
                self.first_upload_rss_mib.append(current_rss_mib())
            return fold_inner(outcome)

        outcomes = self.inner.exchange(requests, timeout=timeout, fold=noted)
        self.exchange_s.append(time.perf_counter() - start)
        return outcomes

    def on_round(self, state: ServerState, report: RoundReport) -> None:
        self.reports.append(report)
        self.round_rss_mib.append(current_rss_mib())
        self.cpu_seconds.append(time.process_time())


def coordinator(args: argparse.Namespace) -> None:
    strategy = fedavg(training(args))
    state = strategy.init(mlp_params(args.dims, RUN.seed))
    setup_rss = current_rss_mib()
    server = GrpcServerTransport(
        tls_identity(node_paths(args.pki, SERVER_NAME, Role.SERVER)),
        peer_check(TrustStore.load(args.pki), Role.CLIENT),
        max_participants=max(64, args.clients + 2),
        run=RunSpec(RUN.run_id, ""),
    )
    emit(port=server.start("127.0.0.1", 0))
    traced = Traced(server)
    try:
        connect_s = wait_for_participants(server, args.clients, timeout=600.0)
        policy = RoundPolicy(min_replies=args.clients, timeout_s=600.0)
        run = functools.partial(run_rounds, run=RUN, policy=policy, on_round=traced.on_round)
        cpu_start = time.process_time()
        run(strategy, traced, state, rounds=args.rounds)
    finally:
        server.stop()
    peak = peak_rss_mib()  # before serial_costs allocates
    emit(
        round_seconds=[r.seconds for r in traced.reports],
        failures=sum(r.num_failures for r in traced.reports),
        connect_seconds=connect_s,
        setup_rss_mib=setup_rss,
        first_upload_s=traced.first_upload_s,
        exchange_s=traced.exchange_s,
        first_upload_rss_mib=traced.first_upload_rss_mib,
        round_rss_mib=traced.round_rss_mib,
        round_cpu_seconds=np.diff([cpu_start, *traced.cpu_seconds]).tolist(),
        peak_rss_mib=peak,
        serial_seconds=serial_costs(state.params.dim),
    )


def serial_costs(dim: int, reps: int = 3) -> tuple[float, float]:
    """Median seconds the coordinator spends on each upload, one upload at a time:
    decoding it, and folding it into the running mean."""
    data = encode(FitRes("p00", 1, np.ones(dim, np.float32), 64, 2, 0.0))
    mean = MeanAccumulator(dim)
    decoding, folding = [], []
    for _ in range(reps):
        start = time.perf_counter()
        res = decode(data, max_bytes=len(data))
        decoding.append(time.perf_counter() - start)
        assert isinstance(res, FitRes)
        start = time.perf_counter()
        mean.add(res.update, float(res.num_examples))
        folding.append(time.perf_counter() - start)
    return statistics.median(decoding), statistics.median(folding)


def wait_for_participants(server: GrpcServerTransport, n: int, timeout: float) -> float:
    start = time.perf_counter()
    while len(server.available()) < n:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{len(server.available())} of {n} participants connected")
        time.sleep(0.05)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=list(ROLES))
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--dims", type=int, nargs="+", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--name", default="")
    parser.add_argument("--learner", choices=["torch", "numpy"], default="torch")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ROLES[args.role](args)


ROLES = {"participant": participant, "coordinator": coordinator}


if __name__ == "__main__":
    main()
