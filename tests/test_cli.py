"""The ``fedswarm`` command line, in process (``CliRunner``) and as the installed script.

The demo is run for real twice, concurrently: once as a subprocess of the console script
and once in process. Both must reach the accuracy target and produce the same model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import pytest
import torch
from matplotlib.image import imread
from safetensors.numpy import load_file
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.data.errors import DatasetNotInstalledError
from fedswarm.data.fashion_mnist import ENV_VAR, load_fashion_mnist
from fedswarm.pytorch.models import MLP
from fedswarm.reports import RoundRecord
from fedswarm.run.config import config_sha256, load_config, loads_config


class Result(Protocol):
    """What the tests read of a CLI result (typer 0.29 and the older typer the Flower
    benchmark pins have different Result classes; both have these)."""

    @property
    def exit_code(self) -> int: ...

    @property
    def output(self) -> str: ...

    @property
    def exception(self) -> BaseException | None: ...


DEMO_TOML = (files("fedswarm") / "configs" / "demo.toml").read_text()
DEMO_ROUNDS, DEMO_EVERY = 40, 5
# The console script installed beside this interpreter; else the same entry point by hand.
_script = shutil.which("fedswarm", path=str(Path(sys.executable).parent))
FEDSWARM = [_script] if _script else [sys.executable, "-c", "from fedswarm.cli import main; main()"]
# One intra-op thread: on a shared 2-core machine the tiny demo MLP runs several times faster.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@contextmanager
def one_thread_then_restore() -> Iterator[None]:
    """Run in-process simulations on one thread; undo ``simulate``'s deterministic switch."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    with one_thread_then_restore():
        yield


def invoke(*args: str, columns: int = 200, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        app, list(args), env={"COLUMNS": str(columns), **(env or {})}, prog_name="fedswarm"
    )


def exited(result: Result, code: int) -> bool:
    """``code`` came from the CLI itself, not from an exception that escaped it."""
    return result.exit_code == code and (code == 0 or isinstance(result.exception, SystemExit))


def flat(text: str) -> str:
    """``text`` without line breaks or runs of spaces (rich wraps long lines)."""
    return " ".join(text.split())


def read_json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def metrics(out: Path) -> list[RoundRecord]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [RoundRecord.from_json(json.loads(t), f"{out} line {i}") for i, t in enumerate(lines)]


@dataclass(frozen=True)
class DemoRuns:
    by_script: Path  # `fedswarm demo` as a subprocess
    in_process: Path  # the same through CliRunner
    output: str  # what the in-process run printed


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    base = tmp_path_factory.mktemp("demo")
    runs = DemoRuns(base / "script", base / "in_process", "")
    with (
        one_thread_then_restore(),
        subprocess.Popen(
            [*FEDSWARM, "demo", "--out", str(runs.by_script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=SUBPROCESS_ENV,
        ) as proc,
    ):
        result = invoke("demo", "--out", str(runs.in_process))
        script_output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, script_output
    assert exited(result, 0), result.output
    return DemoRuns(runs.by_script, runs.in_process, result.output)


# --- the demo ----------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_reaches_the_accuracy_target(demo: DemoRuns) -> None:
    for out in (demo.by_script, demo.in_process):
        assert read_json(out / "summary.json")["eval_accuracy"] >= 0.90
    assert "eval_accuracy" in demo.output
    assert f"run directory: {demo.in_process}" in flat(demo.output)


@pytest.mark.slow
def test_demo_summary(demo: DemoRuns) -> None:
    summary = read_json(demo.by_script / "summary.json")
    model_bytes = (demo.by_script / "model.safetensors").read_bytes()
    assert summary["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert summary["config_sha256"] == config_sha256(loads_config(DEMO_TOML))
    assert (summary["rounds"], summary["seed"]) == (DEMO_ROUNDS, 0)
    last = metrics(demo.by_script)[-1].central
    assert last is not None
    assert (summary["eval_accuracy"], summary["eval_loss"]) == (last.accuracy, last.loss)


@pytest.mark.slow
def test_demo_metrics_has_one_line_per_round(demo: DemoRuns) -> None:
    rows = metrics(demo.by_script)
    assert [r.round for r in rows] == list(range(1, DEMO_ROUNDS + 1))
    for row in rows:
        assert row.num_clients == 20  # fraction 1.0 of 20 clients
        assert row.train_loss > 0
        assert row.seconds >= 0
        assert (row.central is not None) == (row.round % DEMO_EVERY == 0), row
        if row.central is not None:
            assert 0 <= row.central.accuracy <= 1
            assert row.central.loss > 0
    assert rows[-1].train_loss < rows[0].train_loss


@pytest.mark.slow
def test_demo_model_is_the_mlp(demo: DemoRuns) -> None:
    tensors = load_file(str(demo.by_script / "model.safetensors"))
    model = MLP(64, (64,), 10)  # digits: 8x8 pixels, 10 classes; demo hidden = [64]
    expected = model.state_dict()
    assert sorted(tensors) == sorted(expected)  # safetensors stores names sorted
    assert {k: v.shape for k, v in tensors.items()} == {
        k: tuple(v.shape) for k, v in expected.items()
    }
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)


@pytest.mark.slow
def test_demo_config_toml_loads_back(demo: DemoRuns) -> None:
    for out in (demo.by_script, demo.in_process):
        assert load_config(out / "config.toml") == loads_config(DEMO_TOML)


@pytest.mark.slow
def test_demo_curves_png(demo: DemoRuns) -> None:
    path = demo.by_script / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    image = imread(path)  # decodes the whole file: a truncated PNG fails here
    assert image.ndim == 3
    assert image.shape[1] > image.shape[0] > 100
    assert image.std() > 0.01  # not a blank canvas


@pytest.mark.slow
def test_same_seed_same_model(demo: DemoRuns) -> None:
    a = read_json(demo.by_script / "summary.json")
    b = read_json(demo.in_process / "summary.json")
    assert a["model_sha256"] == b["model_sha256"]
    assert [r.train_loss for r in metrics(demo.by_script)] == [
        r.train_loss for r in metrics(demo.in_process)
    ]


def test_different_seed_different_model(tmp_path: Path) -> None:
    """Two short runs of the demo config that differ only in ``seed``."""
    shas: dict[int, dict[str, Any]] = {}
    for seed in (0, 1):
        path = tmp_path / f"seed{seed}.toml"
        path.write_text(
            DEMO_TOML.replace("rounds = 40", "rounds = 2").replace("seed = 0", f"seed = {seed}")
        )
        expected = loads_config(DEMO_TOML).model_copy(update={"rounds": 2, "seed": seed})
        assert load_config(path) == expected
        result = invoke("run", str(path), "--out", str(tmp_path / f"out{seed}"))
        assert exited(result, 0), result.output
        shas[seed] = read_json(tmp_path / f"out{seed}" / "summary.json")
    assert (shas[0]["seed"], shas[1]["seed"]) == (0, 1)
    assert shas[0]["model_sha256"] != shas[1]["model_sha256"]
    assert shas[0]["config_sha256"] != shas[1]["config_sha256"]


def test_the_whole_model_sha256_is_printed_in_an_80_column_terminal(tmp_path: Path) -> None:
    """Deployment and simulation are compared by it: a hash cut short compares nothing."""
    path = tmp_path / "short.toml"
    path.write_text(DEMO_TOML.replace(f"rounds = {DEMO_ROUNDS}", "rounds = 1"))
    result = invoke("run", str(path), "--out", str(tmp_path / "out"), columns=80)
    assert exited(result, 0), result.output
    sha = read_json(tmp_path / "out" / "summary.json")["model_sha256"]
    assert f"model_sha256 {sha}" in result.output.splitlines()


@pytest.mark.slow
def test_run_refuses_a_directory_of_another_config(demo: DemoRuns, tmp_path: Path) -> None:
    path = tmp_path / "longer.toml"
    path.write_text(DEMO_TOML.replace(f"rounds = {DEMO_ROUNDS}", "rounds = 41"))
    before = (demo.in_process / "summary.json").read_bytes()
    result = invoke("run", str(path), "--out", str(demo.in_process))
    assert exited(result, 1), result.output
    assert "run failed" in result.output
    assert "different config" in result.output
    assert (demo.in_process / "summary.json").read_bytes() == before


# --- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("seed = 1\nrouns = 3\n", "rouns"),
        ("[data]\nnme = 'digits'\n", "data.nme"),
        ("[strategy]\nname = 'fedavg'\nmu = 0.01\n", "strategy.mu"),
    ],
)
def test_run_with_a_misspelt_key_exits_2_naming_it(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = invoke("run", str(path), "--out", str(tmp_path / "out"))
    assert exited(result, 2), result.output
    assert f"unknown key '{key}'" in result.output
    assert "allowed keys here" in result.output
    assert not (tmp_path / "out").exists()


def test_run_with_a_missing_config_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    result = invoke("run", str(path))
    assert exited(result, 2), result.output
    assert "".join(str(path).split()) in "".join(result.output.split())


def test_run_with_a_directory_as_config_is_a_config_error(tmp_path: Path) -> None:
    assert exited(invoke("run", str(tmp_path)), 2)


def test_demo_refuses_zero_rounds(tmp_path: Path) -> None:
    result = invoke("demo", "--rounds", "0", "--out", str(tmp_path / "out"))
    assert result.exit_code != 0


# --- datasets ----------------------------------------------------------------------------


def missing_fashion_mnist(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "fashion.toml"
    config.write_text("rounds = 1\n[data]\nname = 'fashion_mnist'\nnum_clients = 2\n")
    return config, {ENV_VAR: str(empty)}


def test_missing_dataset_says_how_to_install_it(tmp_path: Path) -> None:
    config, env = missing_fashion_mnist(tmp_path)
    result = invoke("run", str(config), "--out", str(tmp_path / "out"), env=env)
    assert exited(result, 1), result.output
    assert "dataset missing" in result.output
    assert "apt-get install dataset-fashion-mnist" in flat(result.output)
    assert ENV_VAR in result.output
    assert not (tmp_path / "out").exists()  # nothing is written for a run that cannot start


def test_missing_dataset_message_is_printed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, env = missing_fashion_mnist(tmp_path)
    monkeypatch.setenv(ENV_VAR, env[ENV_VAR])
    with pytest.raises(DatasetNotInstalledError) as caught:
        load_fashion_mnist(num_clients=2)
    result = invoke("run", str(config), "--out", str(tmp_path / "out"), columns=80, env=env)
    assert str(caught.value) in result.output


def test_datasets_lists_all_five(tmp_path: Path) -> None:
    _, env = missing_fashion_mnist(tmp_path)
    result = invoke("datasets", columns=500, env=env)
    assert exited(result, 0), result.output
    rows = {
        line.split()[1]: line
        for line in result.output.splitlines()
        if line.startswith("│") and "│" in line[1:]
    }
    assert {"digits", "fashion_mnist", "shakespeare", "heart", "synthetic"} <= rows.keys()
    assert "ok: 10 classes" in rows["digits"]
    assert "ok:" in rows["synthetic"]
    assert "not installed" in rows["fashion_mnist"]
    assert "apt-get install dataset-fashion-mnist" in rows["fashion_mnist"]


# --- help --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["Usage: fedswarm", "federated learning", "demo", "run", "datasets"]),
        (["demo"], ["--out", "--rounds", "digits", "20 clients", "Dirichlet", "FedAvg"]),
        (["run"], ["CONFIG.toml", "run configuration (TOML)", "--out", "resumes"]),
        (["datasets"], ["List the datasets", "installed", "how to install"]),
    ],
    ids=["fedswarm", "demo", "run", "datasets"],
)
def test_help_explains_each_command(args: list[str], words: list[str]) -> None:
    result = invoke(*args, "--help")
    assert exited(result, 0), result.output
    text = flat(result.output)
    for word in words:
        assert word in text


@pytest.mark.slow
def test_help_as_a_subprocess_does_not_import_torch() -> None:
    script = (
        "import sys\n"
        "sys.argv = ['fedswarm', '--help']\n"
        "try:\n"
        "    from fedswarm.cli import main\n"
        "    main()\n"
        "finally:\n"
        "    print('torch imported:', 'torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: fedswarm" in proc.stdout
    assert "torch imported: False" in proc.stdout
