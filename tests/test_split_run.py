"""``[split]`` runs: the config, ``fedswarm run`` of every mode on digits, and resuming."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.reports import RoundReport
from fedswarm.run.config import ConfigError, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStore
from fedswarm.split.config import SplitConfig


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def config_text(mode: str, rounds: int, extra: str = "") -> str:
    return f"""
seed = 0
rounds = {rounds}
[data]
name = "digits"
num_clients = 5
[model]
name = "mlp"
hidden = [64, 32]
[client]
batch_size = 16
lr = 0.1
momentum = 0.5
[split]
mode = "{mode}"
{extra}
"""


def test_split_config_is_validated_with_keys_named() -> None:
    cfg = loads_config(config_text("u_shaped", 3, "batches_per_exchange = 2\nclip = 5.0"))
    assert cfg.split == SplitConfig.model_validate(
        {"mode": "u_shaped", "batches_per_exchange": 2, "clip": 5.0}, strict=False
    )
    with pytest.raises(ConfigError, match=r"split\.cutt"):
        loads_config(config_text("vanilla", 3, 'cutt = "net.2"'))
    with pytest.raises(ConfigError, match=r"head_cut is for mode 'u_shaped'"):
        loads_config(config_text("vanilla", 3, 'head_cut = "net.5"'))
    with pytest.raises(ConfigError, match=r"split\.mode"):
        loads_config(config_text("diagonal", 3))
    with pytest.raises(ConfigError, match="one epoch"):
        loads_config(config_text("vanilla", 3).replace("lr = 0.1", "lr = 0.1\nepochs = 2"))
    one_hidden = config_text("u_shaped", 3).replace("[64, 32]", "[64]")
    with pytest.raises(ConfigError, match=r"give model\.hidden two layers"):
        loads_config(one_hidden)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["vanilla", "u_shaped", "splitfed_v1", "splitfed_v2"])
def test_fedswarm_run_of_each_mode_reaches_090_on_digits(mode: str, tmp_path: Path) -> None:
    path = tmp_path / f"{mode}.toml"
    path.write_text(config_text(mode, 12 if mode.startswith("splitfed") else 5))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_accuracy"] >= 0.9, (mode, summary)


class CrashError(RuntimeError):
    pass


@pytest.mark.parametrize("mode", ["vanilla", "splitfed_v2"])
def test_a_run_stopped_after_a_round_resumes_to_the_same_bits(mode: str, tmp_path: Path) -> None:
    cfg = loads_config(config_text(mode, 3, "batches_per_exchange = 2"))
    whole = simulate(cfg, tmp_path / "whole")

    def crash_after_round_2(report: RoundReport) -> None:
        if report.round == 2:
            raise CrashError

    with pytest.raises(CrashError):
        simulate(cfg, tmp_path / "crashed", on_round=crash_after_round_2)
    notes: list[str] = []
    resumed = simulate(cfg, tmp_path / "crashed", log=notes.append)
    assert any("resuming" in n for n in notes)
    assert resumed.round == whole.round == 3
    # momentum buffers of both sides were checkpointed, so the resumed run is the same run
    assert np.array_equal(resumed.params.flat, whole.params.flat)
    assert any(k.startswith("trunk/") for k in resumed.optimizer.slots)
    store = RunStore.open(tmp_path / "crashed", cfg)
    assert [r.round for r in store.records()] == [1, 2, 3]
