"""The model registry: lineage of every version, diffs, exports, and rollbacks that continue
a run to the same bits as a run that never went past the rolled-back-to version."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from fedswarm import __version__
from fedswarm.cli import app
from fedswarm.registry import (
    diff_versions,
    export_version,
    find,
    forget,
    lineage,
    open_run,
    rollbacks,
)
from fedswarm.run.config import RunConfig, StoreConfig, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStoreError
from fedswarm.sampling import ForgettingSampler, UniformSampler
from fedswarm.seeding import round_rng

SMALL = """
seed = 3
rounds = 4
[data]
name = "digits"
num_clients = 6
[model]
hidden = [8]
[client]
steps = 2
batch_size = 16
lr = 0.05
[strategy]
name = "fedadam"
server_lr = 0.01
fraction = 0.5
[evaluation]
every = 4
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(**store: Any) -> RunConfig:
    config = loads_config(SMALL)
    return config.model_copy(update={"store": StoreConfig(**store)})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("registry") / "run"
    simulate(small(keep_states=True), out)
    return out


def test_lineage_names_parent_round_contributors_config_and_code(full_run: Path) -> None:
    store = open_run(full_run)
    infos = lineage(store)
    assert [v.round for v in infos] == [0, 1, 2, 3, 4]
    assert infos[0].parent is None
    assert infos[0].contributors == ()
    for parent, child in itertools.pairwise(infos):
        assert child.parent == parent.sha256
        assert len(child.contributors) == 3  # fraction 0.5 of 6, all replied
        assert child.config_sha256 == infos[0].config_sha256
        assert child.code_version.startswith(__version__)
        assert child.resumable  # [store] keep_states


def test_diff_is_per_tensor_l2_and_max_abs(full_run: Path) -> None:
    store = open_run(full_run)
    a, b = store.load_version(1), store.load_version(3)
    changes = diff_versions(a, b)
    assert [c.name for c in changes] == list(a.spec.names)
    flat_l2 = float(np.linalg.norm(b.flat.astype(np.float64) - a.flat))
    assert np.hypot.reduce([c.l2 for c in changes]) == pytest.approx(flat_l2)
    assert max(c.max_abs for c in changes) == pytest.approx(float(np.abs(b.flat - a.flat).max()))
    assert all(c.l2 == 0 for c in diff_versions(a, a))


def test_export_is_standalone_safetensors_with_lineage(full_run: Path, tmp_path: Path) -> None:
    store = open_run(full_run)
    dest = tmp_path / "model.safetensors"
    info = export_version(store, 2, dest)
    with safe_open(str(dest), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert meta["fedswarm.round"] == "2"
    assert meta["fedswarm.parent"] == info.parent
    assert json.loads(meta["fedswarm.contributors"]) == list(info.contributors)
    params = store.load_version(2)
    assert all(np.array_equal(tensors[k], v) for k, v in params.arrays().items())


def test_rollback_then_continuing_equals_the_uninterrupted_run(
    full_run: Path, tmp_path: Path
) -> None:
    """Roll back to round 2 and continue: rounds 3 and 4 come out as the same bits, and the
    rollback is recorded with the versions it discarded."""
    before = {v.round: v.sha256 for v in lineage(open_run(full_run))}
    copy = tmp_path / "run"
    _copy_run(full_run, copy)
    store = open_run(copy)
    assert store.rollback(2) == [3, 4]
    assert [v.round for v in store.versions()] == [0, 1, 2]
    assert [len(store.records())] == [2]
    simulate(small(keep_states=True), copy)
    after = {v.round: v.sha256 for v in lineage(open_run(copy))}
    assert after == before
    (rb,) = rollbacks(open_run(copy))
    assert (rb.from_round, rb.to_round, rb.to_sha256) == (4, 2, before[2])
    assert rb.discarded == ((3, before[3]), (4, before[4]))


def test_rollback_needs_a_kept_resume_state(tmp_path: Path) -> None:
    """Without [store] keep_states only the last round can be continued from."""
    out = tmp_path / "run"
    simulate(small(), out)
    store = open_run(out)
    assert store.resumable() == [4]
    assert [v.resumable for v in lineage(store)] == [False] * 4 + [True]
    with pytest.raises(RunStoreError, match="keep_states"):
        store.rollback(2)
    assert len(store.versions()) == 5  # nothing changed


def test_cli_lists_shows_diffs_exports_and_rolls_back(full_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    copy = tmp_path / "run"
    _copy_run(full_run, copy)
    sha = find(open_run(copy), 3).sha256
    listed = runner.invoke(app, ["models", "list", "--run", str(copy)])
    assert listed.exit_code == 0
    assert sha[:12] in listed.output
    shown = runner.invoke(app, ["models", "show", sha[:10], "--run", str(copy)])
    assert shown.exit_code == 0
    assert sha in shown.output
    assert __version__ in shown.output
    diffed = runner.invoke(app, ["models", "diff", "0", "4", "--run", str(copy)])
    assert diffed.exit_code == 0
    assert "max_abs" in diffed.output
    dest = tmp_path / "m.safetensors"
    exported = runner.invoke(app, ["models", "export", "3", str(dest), "--run", str(copy)])
    assert exported.exit_code == 0
    assert dest.is_file()
    rolled = runner.invoke(app, ["models", "rollback", "3", "--run", str(copy)])
    assert rolled.exit_code == 0
    assert "[4]" in rolled.output
    missing = runner.invoke(app, ["models", "show", "9", "--run", str(copy)])
    assert missing.exit_code == 1
    assert "no version" in missing.output


def _copy_run(src: Path, dest: Path) -> None:
    import shutil

    shutil.copytree(src, dest)


def test_forgetting_sampler_drops_the_forgotten_and_shifts_no_one() -> None:
    """Definition: a round samples from everyone (the forgotten included, whether or not
    still available) and drops the forgotten, so each other participant's rounds are those
    of the run that had it."""
    ids = [f"c{i}" for i in range(10)]
    inner = UniformSampler(fraction=0.4)
    forgetting = ForgettingSampler(inner, frozenset({"c3"}))
    for rnd in range(20):
        full = inner.sample(ids, round_rng(0, rnd, "sample"))
        expected = [c for c in full if c != "c3"]
        assert forgetting.sample(ids, round_rng(0, rnd, "sample")) == expected
        gone = [c for c in ids if c != "c3"]
        assert forgetting.sample(gone, round_rng(0, rnd, "sample")) == expected


def test_forget_equals_a_run_that_never_had_the_participant(full_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    _copy_run(full_run, copy)
    infos = lineage(open_run(copy))
    first: dict[str, int] = {}
    for v in infos:
        for cid in v.contributors:
            first.setdefault(cid, v.round)
    participant = max(first, key=lambda c: first[c])  # the latest first contribution
    done = forget(copy, participant)
    assert done.rolled_back_to == first[participant] - 1
    simulate(done.store.config, copy)

    never = tmp_path / "never"
    simulate(small(keep_states=True).model_copy(update={"forgotten": (participant,)}), never)
    forgot, reference = lineage(open_run(copy)), lineage(open_run(never))
    assert [v.sha256 for v in forgot] == [v.sha256 for v in reference]
    assert all(participant not in v.contributors for v in forgot)
    assert forgot[-1].sha256 != infos[-1].sha256  # its updates mattered
    kinds = [(e.client_id, e.kind) for e in open_run(copy).events()]
    assert (participant, "forgotten") in kinds
    assert len(rollbacks(open_run(copy))) == 1
    with pytest.raises(RunStoreError, match="forgotten already"):
        forget(copy, participant)


def test_cli_forget_retrains_without_the_participant(full_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    _copy_run(full_run, copy)
    participant = lineage(open_run(copy))[1].contributors[0]
    result = CliRunner().invoke(
        app, ["models", "forget", "--participant", participant, "--run", str(copy)]
    )
    assert result.exit_code == 0, result.output
    assert "retrained to round 4" in result.output
    assert all(participant not in v.contributors for v in lineage(open_run(copy)))
    again = CliRunner().invoke(
        app, ["models", "forget", "--participant", participant, "--run", str(copy)]
    )
    assert again.exit_code == 1
    assert "forgotten already" in again.output
