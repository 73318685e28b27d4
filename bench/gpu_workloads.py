"""The GPU benchmark's workloads and the systems it times (``bench/gpu.py`` runs them).

- ``w3``: ``bench/sim_workloads.py``'s W3: Fashion-MNIST, 10,000 clients of 6 images with
  Dirichlet(0.3) label mixes, 1,000 a round, the 54,314-parameter CNN, B = 20, E = 1.
- ``m10`` and ``m100``: McMahan et al.'s CNN (1,663,370 parameters) on Fashion-MNIST, 100
  IID clients of 600 images, B = 10, E = 1, lr 0.05 (``bench/mcmahan.py``'s config), with
  10 or 100 clients a round.

Systems: fedswarm (``Experiment.train``, the path of ``fedswarm run`` minus the run
directory: deterministic kernels, TF32 off by default) with the vectorised or sequential
backend; ``plain``, the FedAvg loop a PyTorch user writes, on the same device, data,
clients, initial model and batches (``run_plain_on``); and the bare-PyTorch probe's
``plain`` and ``vmap`` loops on synthetic data of the same shapes (``probe_references``).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.mcmahan import Algorithm, Model, Options, Setting, run_config
from bench.sim_workloads import W3, Measured, initial_model, sampler_of
from fedswarm.data.arrays import ArrayDataset
from fedswarm.data.partition import Partition
from fedswarm.data.registry import load_dataset
from fedswarm.params import Params
from fedswarm.pytorch.learner import batch_indices, batches_in_one_copy
from fedswarm.pytorch.vectorized import VectorizedTorchLearner
from fedswarm.run.build import build_strategy, data_spec
from fedswarm.run.config import BackendKind, RunConfig, parse_config
from fedswarm.seeding import client_seed, round_rng
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining

__all__ = [
    "PROBE_WORKLOAD",
    "WORKLOADS",
    "Variant",
    "host_only",
    "load_probe",
    "probe_references",
    "run_plain_on",
    "workload",
]

WORKLOADS = ("w3", "m10", "m100")
PROBE_WORKLOAD = {"w3": "W3", "m10": "W4", "m100": "W5"}  # the probe's names for them


@dataclass(frozen=True)
class Variant:
    """How fedswarm runs a workload."""

    backend: BackendKind = BackendKind.VECTORIZED
    precision: str = "fp32"
    tf32: bool = False

    @property
    def name(self) -> str:
        extra = "" if self.precision == "fp32" else f" {self.precision}"
        return f"fedswarm {self.backend.value}{extra}" + (" tf32" if self.tf32 else "")


def workload(name: str, rounds: int, device: str, variant: Variant, quick: bool) -> RunConfig:
    """Workload ``name`` for ``rounds`` rounds on ``device``, central accuracy at the end.

    ``quick``: a smoke run's sizes (1,000 clients, 2 to 20 of them a round).
    """
    if name == "w3":
        raw: dict[str, Any] = parse_config(W3, "W3").model_dump(mode="json")
        raw["strategy"]["clients_per_round"] = 20 if quick else 1_000
        raw["data"]["num_clients"] = 1_000 if quick else 10_000
    else:
        setting = Setting(Partition.IID, 1, Algorithm.FEDAVG, rounds)
        options = Options(Model.CNN, 0.05, 0.3, 0.01, rounds)
        raw = run_config(setting, options).model_dump(mode="json")
        per_round = 10 if name == "m10" else 100
        raw["strategy"]["clients_per_round"] = (2 if name == "m10" else 4) if quick else per_round
        raw["data"]["num_clients"] = 1_000 if quick else 100  # quick: 60 images a client
    raw["rounds"] = rounds
    raw["evaluation"] = {"every": rounds, "central": True, "federated_clients": 0}
    raw["client"]["precision"] = variant.precision
    raw["simulation"] |= {
        "backend": variant.backend.value,
        "device": device,
        "tf32": variant.tf32,
        "threads": 1,
    }
    return parse_config(raw, f"gpu bench {name}")


def run_plain_on(config: RunConfig, device: torch.device) -> Measured:
    """FedAvg as a PyTorch user writes it, on ``device``: the no-framework reference.

    As ``bench/sim_workloads.run_plain``, it borrows fedswarm's dataset, sampler, seeds and
    batch order and nothing else. Every client's data is moved to the device before round
    1 (outside the timing), each client's batch indices in one copy, and the loss stays on
    the device: no host synchronisation inside a round but the last.
    """
    dataset = load_dataset(data_spec(config.data, config.seed))
    model = initial_model(config, dataset).to(device)
    sampler, seed = sampler_of(config), config.seed
    training = build_strategy(config).training
    on_device = {cid: _to(dataset.client(cid).train, device) for cid in dataset.client_ids()}
    weights = [p.detach().clone() for p in model.parameters()]
    seconds, trained = [], 0
    for rnd in range(1, config.rounds + 1):
        start = time.perf_counter()
        total = [torch.zeros_like(w) for w in weights]
        examples = 0
        for cid in sampler.sample(dataset.client_ids(), round_rng(seed, rnd, "sample")):
            x, y = on_device[cid]
            with torch.no_grad():
                for p, w in zip(model.parameters(), weights, strict=True):
                    p.copy_(w)
            _local_sgd(model.train(), x, y, training, client_seed(seed, rnd, cid))
            with torch.no_grad():
                for t, p in zip(total, model.parameters(), strict=True):
                    t.add_(p, alpha=len(y))
            examples, trained = examples + len(y), trained + 1
        weights = [t / examples for t in total]
        _synchronize(device)
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(w)
    return Measured(tuple(seconds), trained, _accuracy(model, dataset.central_test, device))


def _to(data: ArrayDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.x).to(device), torch.from_numpy(data.y).to(device)


def _local_sgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, training: LocalTraining, seed: int
) -> None:
    params = list(model.parameters())
    batches = batches_in_one_copy(list(batch_indices(len(y), training, seed)), x.device)
    for idx in batches:
        loss = F.cross_entropy(model(x[idx]), y[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.add_(g, alpha=-training.lr)


@torch.no_grad()
def _accuracy(model: nn.Module, test: ArrayDataset, device: torch.device) -> float:
    x, y = _to(test, device)
    correct = sum(
        int((model.eval()(x[lo : lo + 2048]).argmax(dim=1) == y[lo : lo + 2048]).sum())
        for lo in range(0, len(y), 2048)
    )
    return correct / len(y)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_probe(path: Path | None) -> ModuleType | None:
    """The bare-PyTorch probe (``gpu_vmap_probe.py``) as a module, or None if absent."""
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("gpu_vmap_probe", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_references(
    probe: ModuleType, name: str, device: torch.device, rounds: int, quick: bool
) -> dict[str, Any]:
    """The probe's plain and vmap loops for workload ``name``: its own ``measure``, which
    checks that the two agree and times each (median of ``rounds`` after a warm-up)."""
    result: dict[str, Any] = probe.measure(PROBE_WORKLOAD[name], device, rounds, quick)
    result["probe_workload"] = result.pop("workload")
    return result


@contextmanager
def host_only() -> Iterator[None]:
    """Vectorised local training replaced by its result's shape alone: every client returns
    the global parameters as a row of one fresh (K, D) matrix, as ``fit_many`` does. What a
    round still costs then (building participants, replies, the exact aggregation fold) is
    the floor that the host puts under a round, whatever the device trains on."""
    real = VectorizedTorchLearner.fit_many

    def no_training(
        self: VectorizedTorchLearner,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
        seeds: Sequence[int],
    ) -> list[LocalFit]:
        rows = np.broadcast_to(params.flat, (len(datasets), params.dim)).copy()
        return [LocalFit(rows[k], len(d), 1, 0.0) for k, d in enumerate(datasets)]

    VectorizedTorchLearner.fit_many = no_training  # type: ignore[method-assign]
    try:
        yield
    finally:
        VectorizedTorchLearner.fit_many = real  # type: ignore[method-assign]
