"""The run store, as ``fedswarm run`` uses it: a crashed run resumes to the same model as one
that never crashed, and every round's model version is kept with its parent.

Crashes are simulated with an ``on_round`` callback that raises after round 3 of 6; by then
the store has committed round 3. (tests/test_store_files.py covers the store's files and
database directly: crashes between a version file and its commit, damage, retention.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.numpy import save

from fedswarm.algorithms.scaffold import CLIENT_CONTROL
from fedswarm.checkpoint import Checkpoint, encode_state
from fedswarm.reports import RoundRecord, RoundReport
from fedswarm.run._blobs import BlobFolder
from fedswarm.run.build import build
from fedswarm.run.config import RunConfig, config_sha256, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStore, RunStoreError

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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SimulatedCrashError(Exception):
    pass


def crash_after(round_: int) -> Callable[[RoundReport], None]:
    def on_round(report: RoundReport) -> None:
        if report.round == round_:
            raise SimulatedCrashError(f"simulated crash after round {round_}")

    return on_round


def records(out: Path) -> list[RoundRecord]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [RoundRecord.from_json(json.loads(t), f"{out} line {i}") for i, t in enumerate(lines)]


def without_timing(rows: list[RoundRecord]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.to_json().items() if k != "seconds"} for row in rows]


def summary(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return result


def crash_midway(config: RunConfig, out: Path) -> None:
    with pytest.raises(SimulatedCrashError):
        simulate(config, out, on_round=crash_after(CRASH_AFTER))
    assert [r.round for r in records(out)] == [1, 2, 3]
    assert not (out / "summary.json").exists()
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold", "fedadam"])
def test_crashed_run_resumes_to_the_uninterrupted_result(tmp_path: Path, strategy: str) -> None:
    config = small_config(strategy)
    whole = simulate(config, tmp_path / "whole")

    out = tmp_path / "crashed"
    crash_midway(config, out)
    ckpt = RunStore.open(out, config).latest()
    assert ckpt is not None
    assert ckpt.state.round == CRASH_AFTER
    if strategy == "scaffold":  # the participants' memories are in the resume state
        assert ckpt.memories
        assert all(set(m) == {CLIENT_CONTROL} for m in ckpt.memories.values())
    if strategy == "fedadam":
        assert set(ckpt.state.optimizer.slots) == {"m", "v"}
    # A crash after a metrics line was appended but before its round committed: a stray line.
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"round": 4, "train_loss": 99.0}) + "\n")

    seen: list[int] = []
    resumed = simulate(config, out, on_round=lambda r: seen.append(r.round))

    assert seen == [4, 5, 6]  # continued after round 3 rather than starting over
    assert [r.round for r in records(out)] == [1, 2, 3, 4, 5, 6]
    assert without_timing(records(out)) == without_timing(records(tmp_path / "whole"))
    assert resumed.round == whole.round == 6
    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()
    for key, slot in whole.optimizer.slots.items():
        assert resumed.optimizer.slots[key].tobytes() == slot.tobytes(), key
    assert summary(out)["model_sha256"] == summary(tmp_path / "whole")["model_sha256"]
    a, b = RunStore.open(out, config).versions(), RunStore.open(tmp_path / "whole", config)
    assert a == b.versions()  # the same lineage, version for version


def test_scaffold_resume_depends_on_the_stored_memories(tmp_path: Path) -> None:
    """The check above would be vacuous if client memories did not change the result."""
    config = small_config("scaffold")
    simulate(config, tmp_path / "whole")
    out = tmp_path / "amnesia"
    crash_midway(config, out)
    ckpt = RunStore.open(out, config).latest()
    assert ckpt is not None
    forgetful = BlobFolder(out / "states").put(encode_state(Checkpoint(ckpt.state, {})))
    with sqlite3.connect(out / "state.sqlite") as db:
        db.execute("UPDATE versions SET state = ? WHERE round = ?", (forgetful, CRASH_AFTER))
    simulate(config, out)
    assert summary(out)["model_sha256"] != summary(tmp_path / "whole")["model_sha256"]


def test_every_version_is_kept_with_its_parent_and_is_a_shorter_runs_model(
    tmp_path: Path,
) -> None:
    config = small_config("fedadam")
    final = simulate(config, tmp_path / "six")
    store = RunStore.open(tmp_path / "six", config)
    versions = store.versions()
    assert [v.round for v in versions] == list(range(7))
    assert all(v.kept for v in versions)
    assert [v.parent for v in versions] == [None, *(v.sha256 for v in versions[:-1])]
    assert len({v.sha256 for v in versions}) == 7
    initial = build(config).initial_state().params
    assert store.load_version(0).flat.tobytes() == initial.flat.tobytes()
    assert store.load_version(versions[6].sha256[:10]).flat.tobytes() == final.params.flat.tobytes()

    three = simulate(small_config("fedadam", rounds=3), tmp_path / "three")
    version = store.load_version(3)
    assert version.spec == three.params.spec
    assert version.flat.tobytes() == three.params.flat.tobytes()
    exported = save({k: v.copy() for k, v in version.arrays().items()})
    assert hashlib.sha256(exported).hexdigest() == summary(tmp_path / "three")["model_sha256"]


def test_rerunning_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    config = small_config(rounds=2)
    simulate(config, tmp_path)
    first, lines = summary(tmp_path), records(tmp_path)
    versions = RunStore.open(tmp_path, config).versions()
    seen: list[int] = []
    again = simulate(config, tmp_path, on_round=lambda r: seen.append(r.round))
    assert seen == []
    assert again.round == 2
    assert records(tmp_path) == lines
    assert summary(tmp_path) == first
    assert RunStore.open(tmp_path, config).versions() == versions


def test_summary_describes_the_files(tmp_path: Path) -> None:
    config = small_config(rounds=3)
    simulate(config, tmp_path)
    result = summary(tmp_path)
    model_bytes = (tmp_path / "model.safetensors").read_bytes()
    assert result["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert result["config_sha256"] == config_sha256(config)
    assert (result["rounds"], result["seed"]) == (3, 7)
    last = records(tmp_path)[-1]  # the last round is evaluated even off the every-2 grid
    assert last.central is not None
    assert (result["eval_accuracy"], result["eval_loss"]) == (
        last.central.accuracy,
        last.central.loss,
    )
    assert records(tmp_path) == RunStore.open(tmp_path, config).records()


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_different_config_is_refused_and_nothing_is_overwritten(tmp_path: Path) -> None:
    config = small_config(rounds=2)
    simulate(config, tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(RunStoreError, match="different config"):
        simulate(small_config(rounds=2, seed=8), tmp_path)
    with pytest.raises(RunStoreError, match=f"{tmp_path} holds a run of a different config"):
        RunStore.open(tmp_path, small_config("scaffold", rounds=2))
    (tmp_path / "config.toml").unlink()  # the database knows its config too
    with pytest.raises(RunStoreError, match=r"state\.sqlite differs"):
        RunStore.open(tmp_path, small_config(rounds=2, seed=8))
    assert _tree(tmp_path) == {k: v for k, v in before.items() if k != "config.toml"}


def test_a_directory_of_the_older_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.safetensors").write_bytes(b"from an older fedswarm")
    with pytest.raises(RunStoreError, match=r"older fedswarm \(checkpoint.safetensors\)"):
        RunStore.open(tmp_path, small_config())
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]
