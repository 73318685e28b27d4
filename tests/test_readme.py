"""The README's tour runs as written, and its config reference covers every key."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from fedswarm.attacks.config import ATTACK_BY_KIND
from fedswarm.privacy.config import AdaptiveClippingConfig, PrivacyConfig
from fedswarm.run import config as cfg
from fedswarm.run.aggregators import OPTIONS_BY_NAME
from fedswarm.secagg.config import SecureAggregationConfig
from fedswarm.swarm.config import SwarmConfig

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


def test_toml_examples_are_valid_configs() -> None:
    toml, private = _blocks("toml")
    config = cfg.loads_config(toml, "README example")
    assert config.strategy.name == "scaffold"
    assert config.data.num_clients == 100
    privacy = cfg.loads_config(private, "README privacy example").privacy
    assert privacy is not None
    assert privacy.target_epsilon == 3.0


@pytest.mark.slow
@pytest.mark.timeout(600)  # its shell gets 300 s
def test_deploy_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """The "deploy across machines" commands, verbatim but for a free port, in a shell."""
    section = README.read_text().split("### Deploy across machines", 1)[1]
    script = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euc", script.replace(":8443", f":{port}")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert summary["rounds"] == 10
    assert summary["eval_accuracy"] > 0.8
    assert '"model_sha256"' in done.stdout  # the last command shows the summary


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
        cfg.DeploymentConfig,
        cfg.StoreConfig,
        *dict.fromkeys(OPTIONS_BY_NAME.values()),
        *dict.fromkeys(ATTACK_BY_KIND.values()),
        SwarmConfig,
        SecureAggregationConfig,
        cfg.SplitConfig,
        PrivacyConfig,
        AdaptiveClippingConfig,
    ],
    ids=str,
)
def test_reference_documents_every_key(model: type[BaseModel]) -> None:
    reference = README.read_text().split("## Config reference", 1)[1]
    nested = {
        "data", "model", "client", "strategy", "evaluation", "simulation", "deployment", "store",
        "aggregator", "attack",
        "swarm",
        "secure_aggregation",
        "split",
        "adaptive_clipping",
    }  # fmt: skip
    missing = {k for k in _keys(model) - nested if f"`{k}`" not in reference}
    assert not missing, f"README config reference lacks {sorted(missing)}"
