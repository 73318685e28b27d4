"""Training devices and precision (issue 15): the config keys and their errors, the CPU path
unchanged, bf16 autocast (on the CPU too), the GPU code paths run on the CPU where they
can be, and, where a CUDA GPU exists, CUDA's results against the CPU's."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from fedswarm import cli
from fedswarm.algorithms import LocalSGDStep
from fedswarm.data.arrays import ArrayDataset
from fedswarm.messages import FitIns
from fedswarm.params import Params
from fedswarm.pytorch import _batches, device
from fedswarm.pytorch.device import (
    DeviceData,
    activation_floats,
    chunk_clients,
    client_bytes,
    cuda_math,
    device_settings,
)
from fedswarm.pytorch.learner import TorchLearner, batch_indices, batches_in_one_copy
from fedswarm.pytorch.models import CNN, MLP
from fedswarm.pytorch.vectorized import VectorizedTorchLearner
from fedswarm.run.build import build, build_strategy
from fedswarm.run.config import (
    ConfigError,
    DeviceKind,
    RunConfig,
    loads_config,
    parse_config,
    raw_config,
)
from fedswarm.run.experiment import Experiment
from fedswarm.simulation.ray_backend import gpus_per_actor_of
from fedswarm.training import GradientCorrection, LocalTraining, OptimizerKind, Precision
from fedswarm.wire import WireError, decode, encode

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason="needs a CUDA GPU: torch.cuda.is_available() is False here"
)
LIMIT = 1 << 24
DIGITS = {  # the demo's data, smaller: 20 clients, 10 a round
    "rounds": 6,
    "data": {"num_clients": 20, "partition": "dirichlet"},
    "model": {"name": "mlp", "hidden": [32]},
    "client": {"epochs": 1, "batch_size": 10, "lr": 0.05},
    "strategy": {"clients_per_round": 10},
    "evaluation": {"every": 6},
}


def digits(**simulation: Any) -> RunConfig:
    return parse_config({**DIGITS, "simulation": simulation}, "digits")


def with_precision(config: RunConfig, precision: str) -> RunConfig:
    raw = raw_config(config)
    raw["client"]["precision"] = precision
    return parse_config(raw, "digits")


def final_params(exp: Experiment) -> np.ndarray:
    return exp.train().params.flat


def last_report(config: RunConfig) -> Any:
    reports: list[Any] = []
    build(config).train(lambda progress: reports.append(progress.report))
    return reports[-1]


def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- configuration ------------------------------------------------------------------------


def test_defaults_train_on_the_cpu_in_fp32() -> None:
    config = RunConfig()
    assert config.simulation.device is DeviceKind.CPU
    assert config.simulation.tf32 is False
    assert config.simulation.ray_gpus_per_actor is None
    assert config.client.precision is Precision.FP32
    assert build_strategy(config).training.precision is Precision.FP32
    assert LocalTraining(4, 0.1).precision is Precision.FP32


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[simulation]\ndevice = "tpu"', ["simulation.device", "'cpu'", "'cuda'", "'auto'"]),
        ('[client]\nprecision = "fp16"', ["client.precision", "'fp32'", "'bf16'"]),
        ("[simulation]\ntf32 = 1", ["simulation.tf32", "bool"]),
        ("[simulation]\nray_gpus_per_actor = 0", ["simulation.ray_gpus_per_actor", "greater"]),
        (
            "[simulation]\nray_gpus_per_actor = 0.5",
            ["simulation.ray_gpus_per_actor needs simulation.device", "remove it"],
        ),
    ],
)
def test_bad_device_keys_name_the_key(toml: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        loads_config(toml, "test.toml")
    for word in words:
        assert word in str(caught.value)


def test_gpu_keys_are_accepted_with_a_gpu_device() -> None:
    config = loads_config(
        '[simulation]\ndevice = "auto"\ntf32 = true\nray_gpus_per_actor = 0.25\n'
        '[client]\nprecision = "bf16"',
        "test.toml",
    )
    assert config.simulation.ray_gpus_per_actor == 0.25
    assert build_strategy(config).training.precision is Precision.BF16


def test_cuda_without_a_gpu_is_a_config_error_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_cuda(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        build(digits(device="cuda"))
    message = str(caught.value)
    assert "simulation.device = 'cuda'" in message
    assert "sees no CUDA device" in message
    assert 'set simulation.device = "cpu"' in message


def test_auto_falls_back_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    no_cuda(monkeypatch)
    exp = build(digits(device="auto"))
    assert exp.device == "cpu"
    assert exp.clients.device == "cpu"
    assert isinstance(exp.learner, TorchLearner)
    assert exp.learner.device == "cpu"


def test_cli_device_flag_overrides_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_cuda(monkeypatch)
    path = tmp_path / "run.toml"
    path.write_text("rounds = 1\n")
    result = CliRunner().invoke(
        cli.app, ["run", str(path), "--device", "cuda", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert "config error" in result.output
    assert "simulation.device = 'cuda'" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
    bad = CliRunner().invoke(cli.app, ["run", str(path), "--device", "tpu"])
    assert bad.exit_code == 2
    assert "tpu" in bad.output


def test_cli_enums_match_the_config_and_pki_ones() -> None:
    from fedswarm.security.pki import Role

    assert [d.value for d in cli.Device] == [d.value for d in DeviceKind]
    assert {r.value for r in cli.NodeRole} == {r.value for r in Role}


class _FakeBackend:
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _FakeBackend.made.append(kwargs)

    def start(self, make_client: Any, warm_up: Any = None) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("device_name", "expected"),
    [
        ("cpu", {"gpus_per_actor": 0.0, "tf32": None}),
        ("cuda", {"gpus_per_actor": None, "tf32": True}),
    ],
)
def test_worker_backends_get_the_gpu_settings(
    monkeypatch: pytest.MonkeyPatch, device_name: str, expected: dict[str, Any]
) -> None:
    import fedswarm.run.experiment as experiment

    monkeypatch.setattr(experiment, "RayBackend", _FakeBackend)
    monkeypatch.setattr(experiment, "ProcessBackend", _FakeBackend)
    for backend in ("ray", "process"):
        _FakeBackend.made.clear()
        exp = build(digits(backend=backend, tf32=True))  # built on the CPU...
        dataclasses_replace(exp, device=device_name).transport().close()  # ...run on device_name
        wanted = expected if backend == "ray" else {"tf32": expected["tf32"]}
        assert _FakeBackend.made == [wanted]


def test_gpu_participants_keep_their_data_and_cpu_ones_do_not() -> None:
    exp = build(digits())
    cid = exp.dataset.client_ids()[0]
    gpu = dataclasses_replace(exp.clients, device="cuda")  # builds no CUDA state: no fit runs
    assert gpu(cid).data is gpu(cid).data  # one ClientData: its device copy serves every round
    assert exp.clients(cid).data is not exp.clients(cid).data  # CPU: memory grows with the sample


# --- the CPU path is unchanged ------------------------------------------------------------


@pytest.mark.parametrize("backend", ["vectorized", "sequential"])
def test_an_explicit_cpu_device_changes_no_bit(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    default = final_params(build(digits(backend=backend)))

    def refuse(tf32: bool) -> None:
        raise AssertionError("a CPU run must not touch the CUDA math settings")

    monkeypatch.setattr(device, "cuda_math", refuse)
    explicit = final_params(build(digits(device="cpu", tf32=True, backend=backend)))
    np.testing.assert_array_equal(explicit, default)


def test_cpu_data_is_used_in_place() -> None:
    data, cache = _images(5, 0), DeviceData()
    x, y = cache.tensors(data, torch.device("cpu"))
    assert np.shares_memory(x.numpy(), data.x)
    assert np.shares_memory(y.numpy(), data.y)
    assert len(cache._copies) == 0


# --- the device code paths, run where the CPU can ------------------------------------------


def test_device_copies_are_made_once_and_dropped_with_the_data() -> None:
    data, cache, meta = _images(5, 0), DeviceData(), torch.device("meta")
    x, y = cache.tensors(data, meta)
    assert x.device == meta
    assert tuple(x.shape) == data.x.shape
    assert cache.tensors(data, meta)[0] is x  # the same copy, not a new one
    del data, x, y
    gc.collect()
    assert len(cache._copies) == 0


def test_batches_sent_in_one_copy_are_the_same_batches() -> None:
    training = LocalTraining(batch_size=4, lr=0.1, epochs=2)
    batches = list(batch_indices(10, training, seed=3))
    sent = batches_in_one_copy(batches, torch.device("cpu"))
    assert len(sent) == len(batches) == 6
    for a, b in zip(sent, batches, strict=True):
        assert torch.equal(a, b)
    assert batches_in_one_copy([], torch.device("cpu")) == []


def test_steps_sent_in_one_copy_and_stacked_copies_match_the_host_path() -> None:
    datasets = [_images(n, n) for n in (5, 0, 9)]
    training, seeds = LocalTraining(batch_size=4, lr=0.1, epochs=1), [1, 2, 3]
    offsets, pad = [0, 5, 5], 14
    steps = list(_batches._step_indices(datasets, training, seeds, offsets, pad))
    assert [full for _, _, full in steps] == [False, False, False]  # client 1 has no data
    for (i, a, f), (i2, a2, f2) in zip(
        steps, _batches.moved(steps, torch.device("cpu")), strict=True
    ):
        assert torch.equal(i, i2)
        assert torch.equal(a, a2)
        assert f == f2
    host = _batches._stacked_arrays(datasets)
    pairs = [DeviceData().tensors(d, torch.device("cpu")) for d in datasets]
    for a, b in zip(host, _batches._stacked_copies(pairs), strict=True):
        assert torch.equal(a, b)


def test_gpu_chunks_fill_half_the_free_memory() -> None:
    assert chunk_clients(10_000, 1_000) == 5
    assert chunk_clients(10, 1_000) == 1
    mlp = MLP(6, (8,), 3)
    assert activation_floats(mlp, torch.zeros(1, 6)) == 6 + 8 + 8 + 3  # Flatten, Linear, ReLU...
    # W3: the 54,314-parameter CNN, B = 20, clients of 6 images: 1,000 in one chunk on a GPU
    # with 100 GiB free, where the CPU rule (2**22 // D) gives 77.
    cnn = CNN(1, 28, (8, 16), 64, 10)
    dim = sum(p.numel() for p in cnn.parameters())
    datasets = [ArrayDataset(np.zeros((6, 1, 28, 28), np.float32), np.zeros(6, np.int64))]
    activations = activation_floats(cnn, torch.zeros(1, 1, 28, 28))
    per_client = client_bytes(dim, 8, 20, activations, datasets)
    assert 4 * 8 * dim < per_client < 16 * 2**20
    assert chunk_clients(100 * 2**30, per_client) >= 1_000


def test_cuda_math_is_set_for_the_run_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = device._read_math()
    with cuda_math(tf32=True):
        assert device._read_math() == ("tf32", "tf32", "tf32")
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert device._read_math() == before
    with cuda_math(tf32=False):
        assert device._read_math() == ("ieee", "ieee", "ieee")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with device_settings("cuda", tf32=False):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # the user's own is kept
    with device_settings("cpu", tf32=True):
        assert device._read_math() == before


def test_ray_actors_share_the_gpus_evenly() -> None:
    assert gpus_per_actor_of(0.0, 4, 8) == 0.0
    assert gpus_per_actor_of(0.3, 1, 8) == 0.3
    assert gpus_per_actor_of(None, 2, 8) == 0.25
    assert gpus_per_actor_of(None, 8, 4) == 1.0
    with pytest.raises(ValueError, match=r"simulation\.device"):
        gpus_per_actor_of(None, 0, 4)


# --- bf16 autocast (on the CPU, so CI runs it) ----------------------------------------------


def _images(n: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    return ArrayDataset(x, rng.integers(0, 3, n).astype(np.int64))


def _recording(seen: list[torch.dtype]) -> Callable[[], nn.Module]:
    """A small CNN whose dense layers record the dtype of what they output."""

    def make() -> nn.Module:
        torch.manual_seed(0)
        model = CNN(1, 8, (2, 3), 8, 3)
        for module in model.head:
            if isinstance(module, nn.Linear):
                module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        return model

    return make


BF16 = LocalTraining(batch_size=4, lr=0.1, epochs=1, momentum=0.9, precision=Precision.BF16)


@pytest.mark.parametrize("kind", [TorchLearner, VectorizedTorchLearner])
def test_bf16_autocasts_the_forward_of_training_only(kind: type[Any]) -> None:
    seen: list[torch.dtype] = []
    learner = kind(_recording(seen))
    params = learner.init_params(seed=0)
    data = _images(10, 1)
    learner.fit(params, data, BF16, GradientCorrection(), seed=2)  # once-per-learner probes
    seen.clear()
    fit = learner.fit(params, data, BF16, GradientCorrection(), seed=2)
    assert len(seen) == 2 * 3  # two dense layers, three steps
    assert set(seen) == {torch.bfloat16}  # the autocast path ran, at every step
    assert fit.params.dtype == np.float32
    assert np.isfinite(fit.train_loss)
    seen.clear()
    learner.fit(params, data, LocalTraining(4, 0.1), GradientCorrection(), seed=2)
    assert seen
    assert set(seen) == {torch.float32}
    seen.clear()
    learner.evaluate(Params(params.spec, fit.params), data)
    assert seen
    assert set(seen) == {torch.float32}  # evaluation in fp32


def test_bf16_vectorized_follows_bf16_sequential() -> None:
    datasets = [_images(n, n) for n in (9, 4, 0, 13)]
    vectorized = VectorizedTorchLearner(_recording([]))
    sequential = TorchLearner(_recording([]))
    params = sequential.init_params(seed=0)
    seeds = [1, 2, 3, 4]
    no_corrections = [GradientCorrection()] * len(datasets)
    got = vectorized.fit_many(params, datasets, BF16, no_corrections, seeds)
    for fit, data, seed in zip(got, datasets, seeds, strict=True):
        expected = sequential.fit(params, data, BF16, GradientCorrection(), seed)
        np.testing.assert_allclose(fit.params, expected.params, atol=2e-2)
        assert fit.num_steps == expected.num_steps


def test_bf16_accuracy_is_close_to_fp32_on_digits() -> None:
    config = parse_config({**DIGITS, "rounds": 15, "evaluation": {"every": 15}}, "digits")
    fp32, bf16 = (last_report(with_precision(config, p)) for p in ("fp32", "bf16"))
    assert fp32.central.accuracy > 0.8
    assert abs(bf16.central.accuracy - fp32.central.accuracy) < 0.03
    assert bf16.train_loss != fp32.train_loss  # bf16 did change the arithmetic


# --- the wire carries the precision ---------------------------------------------------------


@pytest.mark.parametrize("precision", list(Precision))
def test_precision_travels_in_the_fit_instruction(precision: Precision) -> None:
    params = Params.from_arrays({"w": np.arange(3, dtype=np.float32)})
    training = LocalTraining(8, 0.05, optimizer=OptimizerKind.ADAM, precision=precision)
    ins = FitIns("run", 1, params, training, LocalSGDStep(), 7, ())
    back = decode(encode(ins), max_bytes=LIMIT)
    assert isinstance(back, FitIns)
    assert back.training == training


def test_an_unknown_precision_is_a_wire_error_naming_the_field() -> None:
    params = Params.from_arrays({"w": np.arange(3, dtype=np.float32)})
    data = encode(FitIns("run", 1, params, LocalTraining(8, 0.05), LocalSGDStep(), 7, ()))
    with pytest.raises(WireError, match=r"training\.precision: expected one of 'fp32', 'bf16'"):
        decode(data.replace(b'"precision":"fp32"', b'"precision":"fp16"'), max_bytes=LIMIT)


# --- CUDA against the CPU (skipped without a GPU) --------------------------------------------

TRAINING = LocalTraining(batch_size=4, lr=0.05, epochs=2, momentum=0.9, weight_decay=1e-3)


def _cnn() -> nn.Module:
    return CNN(1, 8, (2, 3), 8, 3)


@needs_cuda
def test_cuda_sequential_fit_equals_the_cpu_within_tolerance() -> None:
    cpu, gpu = TorchLearner(_cnn), TorchLearner(_cnn, device="cuda")
    params, data = cpu.init_params(seed=0), _images(30, 1)
    correction = GradientCorrection(mu=0.1)
    a = cpu.fit(params, data, TRAINING, correction, 5)
    b = gpu.fit(params, data, TRAINING, correction, 5)
    np.testing.assert_allclose(b.params, a.params, atol=1e-4)
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
    assert gpu.evaluate(params, data).accuracy == pytest.approx(
        cpu.evaluate(params, data).accuracy, abs=0.05
    )
    assert len(gpu._data._copies) == 1  # the data went to the GPU once, for fit and evaluate


@needs_cuda
@pytest.mark.parametrize("precision", list(Precision))
def test_cuda_vectorized_fit_many_equals_the_cpu_in_one_chunk(
    monkeypatch: pytest.MonkeyPatch, precision: Precision
) -> None:
    training = LocalTraining(4, 0.05, epochs=2, precision=precision)
    cpu, gpu = VectorizedTorchLearner(_cnn), VectorizedTorchLearner(_cnn, device="cuda")
    datasets = [_images(n, n) for n in (9, 4, 0, 13)]
    params, seeds = cpu.init_params(seed=0), [1, 2, 3, 4]
    corrections = [GradientCorrection(mu=0.1)] * 4
    chunks: list[int] = []
    fit_chunk = VectorizedTorchLearner._fit_chunk

    def spy(self: VectorizedTorchLearner, *args: Any) -> Any:
        chunks.append(len(args[2]))
        return fit_chunk(self, *args)

    a = cpu.fit_many(params, datasets, training, corrections, seeds)
    monkeypatch.setattr(VectorizedTorchLearner, "_fit_chunk", spy)
    b = gpu.fit_many(params, datasets, training, corrections, seeds)
    assert chunks == [4]  # the GPU's chunk holds them all
    atol = 1e-4 if precision is Precision.FP32 else 2e-2
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y.params, x.params, atol=atol)
        assert y.num_steps == x.num_steps


@needs_cuda
def test_a_cuda_run_matches_the_cpu_and_repeats_bit_for_bit() -> None:
    cpu = final_params(build(digits()))
    gpu = [final_params(build(digits(device="cuda"))) for _ in range(2)]
    np.testing.assert_array_equal(gpu[0], gpu[1])  # deterministic kernels on CUDA too
    np.testing.assert_allclose(gpu[0], cpu, atol=1e-3)
    tf32 = final_params(build(digits(device="cuda", tf32=True, backend="sequential")))
    np.testing.assert_allclose(tf32, cpu, atol=5e-2)
