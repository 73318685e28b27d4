"""The README's tour runs as written, and its config reference covers every key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from fedswarm import config as cfg

README = Path(__file__).parent.parent / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_tour_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "Evaluation(" in out
    assert "accuracy=" in out
    accuracy = float(re.findall(r"accuracy=([0-9.]+)", out)[-1])
    assert accuracy > 0.8


def test_toml_example_is_a_valid_config() -> None:
    (toml,) = _blocks("toml")
    config = cfg.loads_config(toml, "README example")
    assert config.strategy.name == "scaffold"
    assert config.data.num_clients == 100


def _keys(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


@pytest.mark.parametrize(
    "model",
    [
        cfg.RunConfig,
        cfg.DataConfig,
        cfg.ModelConfig,
        cfg.ClientConfig,
        cfg.EvaluationConfig,
        cfg.FedAvgConfig,
        cfg.FedAvgMConfig,
        cfg.FedProxConfig,
        cfg.FedOptConfig,
        cfg.ScaffoldConfig,
        cfg.SimulationConfig,
    ],
)
def test_reference_documents_every_key(model: type[BaseModel]) -> None:
    reference = README.read_text().split("## Config reference", 1)[1]
    nested = {"data", "model", "client", "strategy", "evaluation", "simulation"}
    missing = {k for k in _keys(model) - nested if f"`{k}`" not in reference}
    assert not missing, f"README config reference lacks {sorted(missing)}"
