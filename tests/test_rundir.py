"""The run directory: a crashed run resumes to the same model as one that never crashed.

Crashes are simulated with an ``on_round`` callback that raises after round 3 of 6; by then
``record_round`` has appended the metrics line and written the checkpoint of round 3.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from fedswarm.algorithms.scaffold import CLIENT_CONTROL
from fedswarm.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedswarm.driver import RoundReport
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.params import Params
from fedswarm.run.build import build_strategy
from fedswarm.run.config import RunConfig, config_sha256, loads_config
from fedswarm.run.rundir import RunDirectory, RunDirectoryError
from fedswarm.run.simulate import simulate
from fedswarm.strategy import ServerState

# 6 clients, half of them per round, so SCAFFOLD's per-client memories differ and matter.
SMALL = """
seed = 7
rounds = 6
[data]
name = "digits"
num_clients = 6
partition = "dirichlet"
[model]
hidden = [16]
[client]
steps = 4
batch_size = 16
lr = 0.05
[strategy]
{strategy}
fraction = 0.5
[evaluation]
every = 2
federated_clients = 2
"""
STRATEGIES = {
    "fedavg": 'name = "fedavg"',
    "scaffold": 'name = "scaffold"',
    "fedadam": 'name = "fedadam"\nserver_lr = 0.01',  # server moments must resume too
}
CRASH_AFTER = 3


def small_config(strategy: str = "fedavg", **changes: Any) -> RunConfig:
    return loads_config(SMALL.format(strategy=STRATEGIES[strategy])).model_copy(update=changes)


@pytest.fixture(autouse=True)
def _torch_globals() -> Iterator[None]:
    """One intra-op thread (tiny models on a shared 2-core box run 5x faster), and undo
    ``simulate``'s process-wide switch to deterministic algorithms."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


class SimulatedCrashError(Exception):
    pass


def crash_after(round_: int) -> Callable[[RoundReport], None]:
    def on_round(report: RoundReport) -> None:
        if report.round == round_:
            raise SimulatedCrashError(f"simulated crash after round {round_}")

    return on_round


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def summary(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return result


def crash_midway(config: RunConfig, out: Path) -> None:
    with pytest.raises(SimulatedCrashError):
        simulate(config, out, on_round=crash_after(CRASH_AFTER))
    assert [r["round"] for r in records(out)] == [1, 2, 3]
    assert not (out / "summary.json").exists()
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold", "fedadam"])
def test_crashed_run_resumes_to_the_uninterrupted_result(tmp_path: Path, strategy: str) -> None:
    config = small_config(strategy)
    whole = simulate(config, tmp_path / "whole")

    out = tmp_path / "crashed"
    crash_midway(config, out)
    ckpt = load_checkpoint(out / "checkpoint.safetensors")
    assert ckpt.state.round == CRASH_AFTER
    if strategy == "scaffold":  # the participants' memories are in the checkpoint
        assert ckpt.memories
        assert all(set(m) == {CLIENT_CONTROL} for m in ckpt.memories.values())
    # A crash between appending round 4's metrics and checkpointing it leaves a stray line.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"round": 4, "train_loss": 99.0}) + "\n")

    seen: list[int] = []
    resumed = simulate(config, out, on_round=lambda r: seen.append(r.round))

    assert seen == [4, 5, 6]  # continued after round 3 rather than starting over
    assert [r["round"] for r in records(out)] == [1, 2, 3, 4, 5, 6]
    assert without_timing(records(out)) == without_timing(records(tmp_path / "whole"))
    assert resumed.round == whole.round == 6
    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()
    assert summary(out)["model_sha256"] == summary(tmp_path / "whole")["model_sha256"]


def test_scaffold_resume_depends_on_the_checkpointed_memories(tmp_path: Path) -> None:
    """The check above would be vacuous if client memories did not change the result."""
    config = small_config("scaffold")
    simulate(config, tmp_path / "whole")
    out = tmp_path / "amnesia"
    crash_midway(config, out)
    ckpt = load_checkpoint(out / "checkpoint.safetensors")
    save_checkpoint(out / "checkpoint.safetensors", Checkpoint(ckpt.state, {}, ckpt.config_sha256))
    simulate(config, out)
    assert summary(out)["model_sha256"] != summary(tmp_path / "whole")["model_sha256"]


def test_rerunning_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    config = small_config(rounds=2)
    simulate(config, tmp_path)
    first, lines = summary(tmp_path), records(tmp_path)
    seen: list[int] = []
    again = simulate(config, tmp_path, on_round=lambda r: seen.append(r.round))
    assert seen == []
    assert again.round == 2
    assert records(tmp_path) == lines
    assert summary(tmp_path) == first


def test_summary_describes_the_files(tmp_path: Path) -> None:
    config = small_config(rounds=3)
    simulate(config, tmp_path)
    result = summary(tmp_path)
    model_bytes = (tmp_path / "model.safetensors").read_bytes()
    assert result["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert result["config_sha256"] == config_sha256(config)
    assert (result["rounds"], result["seed"]) == (3, 7)
    last = records(tmp_path)[-1]  # the last round is evaluated even off the every-2 grid
    assert (result["eval_accuracy"], result["eval_loss"]) == (
        last["eval_accuracy"],
        last["eval_loss"],
    )


def test_a_different_config_is_refused_and_nothing_is_overwritten(tmp_path: Path) -> None:
    config = small_config(rounds=2)
    simulate(config, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RunDirectoryError, match="different config"):
        simulate(small_config(rounds=2, seed=8), tmp_path)
    with pytest.raises(RunDirectoryError, match=str(tmp_path)):
        RunDirectory.open(tmp_path, small_config("scaffold", rounds=2))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- checkpoint files --------------------------------------------------------------------


def fedadam_state() -> tuple[ServerState, dict[ClientId, ClientMemory]]:
    """A mid-run state with non-trivial Adam moments, update slots and client memories."""
    rng = np.random.default_rng(0)
    params = Params.from_arrays(
        {
            "layer.weight": rng.standard_normal((3, 4)).astype(np.float32),
            "layer.bias": rng.standard_normal(3).astype(np.float32),
            "norm.num_batches_tracked": np.array(5, np.int64),
        }
    )
    strategy = build_strategy(loads_config('[strategy]\nname = "fedadam"\n'))
    state = strategy.init(params)
    for _ in range(3):
        grad = rng.standard_normal(params.dim).astype(np.float32)
        flat, opt = strategy.server_optimizer.apply(state.optimizer, state.params.flat, grad)
        state = ServerState(state.round + 1, state.params.replace(flat), opt, state.update)
    update = {"control": rng.standard_normal(params.dim).astype(np.float32)}
    memories: dict[ClientId, ClientMemory] = {
        "00001": {CLIENT_CONTROL: rng.standard_normal(params.dim).astype(np.float32)},
        "00004": {CLIENT_CONTROL: rng.standard_normal(params.dim).astype(np.float32)},
    }
    return ServerState(state.round, state.params, state.optimizer, update), memories


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].tobytes() == b[k].tobytes(), k


def test_checkpoint_round_trips_a_server_state_exactly(tmp_path: Path) -> None:
    state, memories = fedadam_state()
    assert set(state.optimizer.slots) == {"m", "v"}
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, Checkpoint(state, memories, "ab" * 32))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    loaded = load_checkpoint(path)
    assert loaded.config_sha256 == "ab" * 32
    assert loaded.state.round == state.round == 3
    assert loaded.state.params.spec == state.params.spec
    assert loaded.state.params.flat.tobytes() == state.params.flat.tobytes()
    assert loaded.state.optimizer.step == state.optimizer.step == 3
    assert_same_arrays(dict(loaded.state.optimizer.slots), dict(state.optimizer.slots))
    assert_same_arrays(dict(loaded.state.update), dict(state.update))
    assert loaded.memories.keys() == memories.keys()
    for cid, memory in memories.items():
        assert_same_arrays(dict(loaded.memories[cid]), dict(memory))
    assert_same_arrays(loaded.state.params.arrays(), state.params.arrays())  # int64 kept


def test_checkpoint_keeps_client_ids_that_contain_a_slash(tmp_path: Path) -> None:
    state, memories = fedadam_state()
    renamed = {f"hamlet/{cid}": m for cid, m in memories.items()}
    save_checkpoint(tmp_path / "c.safetensors", Checkpoint(state, renamed, "0" * 64))
    assert set(load_checkpoint(tmp_path / "c.safetensors").memories) == set(renamed)


def test_a_foreign_safetensors_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(ValueError, match="not a fedswarm checkpoint"):
        load_checkpoint(path)
