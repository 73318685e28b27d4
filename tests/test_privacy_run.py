"""``[privacy]`` in a run: the config refusals, and ``fedswarm run``'s files (every round's
epsilon in metrics.jsonl, ``"privacy"`` in summary.json) across a crash and resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting import rdp

from fedswarm.messages import FitIns
from fedswarm.params import Params
from fedswarm.privacy import GaussianNoise
from fedswarm.run.build import run_codec, run_strategy
from fedswarm.run.config import ConfigError, RunConfig, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.strategy import RunInfo
from fedswarm.transforms import ClipNorm
from fedswarm.wire import WireError, default_codec

PRIVATE = """
seed = 3
rounds = 4
[data]
name = "digits"
num_clients = 20
[model]
name = "logreg"
[client]
steps = 2
batch_size = 16
[strategy]
{strategy}
[simulation]
backend = "sequential"
[evaluation]
every = 4
[privacy]
noise_multiplier = 1.2
clip_norm = 0.5
delta = 1e-5
{privacy}
"""


STRATEGY = {"sampling": '"poisson"', "fraction": "0.25", "weighting": '"uniform"'}


def text(strategy: str = "", privacy: str = "") -> str:
    """The private config, ``strategy``'s ``key = value`` lines replacing the defaults'."""
    keys = dict(STRATEGY)
    for line in filter(None, strategy.splitlines()):
        key, value = line.split(" = ")
        keys[key] = value
    table = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return PRIVATE.format(strategy=table, privacy=privacy)


def config(strategy: str = "", privacy: str = "") -> RunConfig:
    return loads_config(text(strategy, privacy), "test.toml")


@pytest.mark.parametrize(
    ("strategy", "privacy", "names"),
    [
        ('sampling = "fixed"', "", ["strategy.sampling", '"poisson"']),
        ('weighting = "examples"', "", ["strategy.weighting", '"uniform"']),
        ("clip_norm = 1.0", "", ["strategy.clip_norm", "privacy.clip_norm"]),
        ("clients_per_round = 5", "", ["strategy.clients_per_round"]),
        ("min_clients = 2", "", ["strategy.min_clients"]),
        ("", 'mechanism = "local"\n[privacy.adaptive_clipping]\ncount_noise = 1.0', ["local"]),
        ("", "noise_multiplier_typo = 3", ["privacy.noise_multiplier_typo", "target_epsilon"]),
        ("", 'accountant = "moments"', ["privacy.accountant", "'rdp'", "'pld'"]),
    ],
)
def test_combinations_that_break_the_guarantee_are_refused_naming_the_keys(
    strategy: str, privacy: str, names: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        config(strategy, privacy)
    for name in names:
        assert name in str(err.value)


def test_a_missing_clip_norm_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"privacy.clip_norm is required"):
        loads_config(text().replace("clip_norm = 0.5\n", ""))


def test_scaffold_is_refused_under_privacy() -> None:
    scaffold = text().replace('weighting = "uniform"', 'name = "scaffold"')
    with pytest.raises(ConfigError, match="scaffold"):
        loads_config(scaffold)


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


class CrashError(Exception):
    pass


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(t) for t in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_private_run_reports_epsilon_every_round_and_resumes_to_the_same(tmp_path: Path) -> None:
    cfg = config()
    simulate(cfg, tmp_path / "whole")

    def crash(report: Any) -> None:
        if report.round == 2:
            raise CrashError

    with pytest.raises(CrashError):
        simulate(cfg, tmp_path / "crashed", on_round=crash)
    simulate(cfg, tmp_path / "crashed")

    accountant, expected = rdp.RdpAccountant(), []
    for _ in range(4):
        accountant.compose(
            dp_accounting.PoissonSampledDpEvent(0.25, dp_accounting.GaussianDpEvent(1.2))
        )
        expected.append(accountant.get_epsilon(1e-5))
    for out in ("whole", "crashed"):
        eps = [line["metrics"]["privacy/epsilon"] for line in lines(tmp_path / out)]
        assert eps == pytest.approx(expected, rel=1e-12)
    summary = json.loads((tmp_path / "crashed" / "summary.json").read_text())
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["model_sha256"] == whole["model_sha256"]
    assert summary["privacy"] == whole["privacy"]
    assert summary["privacy"] == {
        "epsilon": pytest.approx(expected[-1], rel=1e-12),
        "delta": 1e-5,
        "accountant": "rdp",
        "mechanism": "central",
        "noise_multiplier": 1.2,
        "sampling_rate": 0.25,
        "rounds": 4,
    }


@pytest.mark.slow
def test_target_epsilon_ends_the_run_early_and_the_summary_says_so(tmp_path: Path) -> None:
    notes: list[str] = []
    cfg = config(privacy="target_epsilon = 5.0").model_copy(update={"rounds": 30})
    final = simulate(cfg, tmp_path, log=notes.append)
    summary = json.loads((tmp_path / "summary.json").read_text())["privacy"]
    assert 0 < final.round < 30
    assert summary["rounds"] == final.round
    assert summary["epsilon"] <= 5.0
    assert summary["stopped_by_budget"] is True
    assert any("target_epsilon 5" in n for n in notes)


def test_local_dp_instructions_cross_the_wire() -> None:
    """What local DP sends participants on other machines (clip, then private noise)
    encodes and decodes with the run's codec; the plain default codec refuses it."""
    cfg = config(privacy='mechanism = "local"')
    strategy = run_strategy(cfg)
    state = strategy.init(Params.from_arrays({"w": np.zeros(3, np.float32)}))
    requests = strategy.configure_fit(state, [f"{k:05d}" for k in range(40)], RunInfo("r", 0))
    ins = requests[0][1]
    codec = run_codec()
    back = codec.decode(codec.encode(ins), max_bytes=1 << 20)
    assert isinstance(back, FitIns)
    assert back.transforms == (ClipNorm(0.5), GaussianNoise(0.6))
    with pytest.raises(WireError, match="GaussianNoise"):
        default_codec().encode(ins)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["vectorized", "process"])
@pytest.mark.parametrize("mechanism", ["central", "local"])
def test_every_backend_runs_private_rounds(tmp_path: Path, backend: str, mechanism: str) -> None:
    """The clip (and local noise) transform reaches participants on every backend: with a
    clip norm far below the raw update norms, an unclipped upload would stop a central run
    with a PrivacyError; the epsilon is the same as the sequential backend's."""
    privacy = f'mechanism = "{mechanism}"'
    base = text(privacy=privacy).replace("clip_norm = 0.5", "clip_norm = 0.001")
    runs = {}
    for kind in ("sequential", backend):
        cfg = loads_config(base.replace('backend = "sequential"', f'backend = "{kind}"'))
        cfg = cfg.model_copy(update={"rounds": 2})
        simulate(cfg, tmp_path / kind)
        runs[kind] = json.loads((tmp_path / kind / "summary.json").read_text())["privacy"]
    assert runs[backend] == runs["sequential"]
    assert runs[backend]["rounds"] == 2
