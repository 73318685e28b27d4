"""The run store's files and database, directly: crash safety (a crash between a round's
files and its commit leaves the round before), damaged or missing files named in the error,
retention, the participant registry, and the checkpoint encodings it is built on."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedswarm.algorithms.scaffold import CLIENT_CONTROL
from fedswarm.checkpoint import (
    Checkpoint,
    CheckpointError,
    decode_params,
    decode_state,
    encode_params,
    encode_state,
)
from fedswarm.messages import ClientId, ClientMemory, Failure, Refusal, Stage
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.reports import RoundReport
from fedswarm.run import _ledger
from fedswarm.run.build import build_strategy
from fedswarm.run.config import ConfigError, RunConfig, parse_config
from fedswarm.run.store import Event, RunStore, RunStoreError
from fedswarm.strategy import ServerState
from fedswarm.training import LocalTraining

CONFIG = parse_config({"rounds": 3, "data": {"num_clients": 2}})
TRAINING = LocalTraining(batch_size=8, lr=0.1, epochs=1)


def _state(rnd: int, value: float) -> ServerState:
    state = fedavg(TRAINING).init(Params.from_arrays({"w": np.full(4, value, np.float32)}))
    return replace(state, round=rnd)


def _report(rnd: int, failures: tuple[Failure, ...] = ()) -> RoundReport:
    return RoundReport(rnd, 2, len(failures), 0.5, 1.0, 0.1, replied=("a", "b"), failures=failures)


def _store(path: Path, rounds: int, config: RunConfig = CONFIG) -> RunStore:
    store = RunStore.open(path, config)
    store.begin(_state(0, 0.0))
    for r in range(1, rounds + 1):
        store.commit(_state(r, float(r)), _report(r), {})
    return store


def _files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_a_committed_round_is_what_a_restart_resumes_from(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, CONFIG)
    assert store.latest() is None
    store.begin(_state(0, 0.0))
    store.commit(_state(1, 1.0), _report(1), {})
    why = "update contains NaN or Inf"
    refused = Failure.refused("b", 2, Stage.FIT, Refusal.NON_FINITE, why)
    store.commit(_state(2, 2.0), _report(2, (refused,)), {})
    store.refused([("c", "a reply to message 00ff, which is not an instruction")], 2)
    again = RunStore.open(tmp_path, CONFIG)  # a restarted coordinator
    assert again.run_id == store.run_id
    latest = again.latest()
    assert latest is not None
    assert latest.state.round == 2
    np.testing.assert_array_equal(latest.state.params.flat, np.full(4, 2.0, np.float32))
    registry = {c.client_id: (c.updates, c.failures, c.refusals) for c in again.clients()}
    assert registry == {"a": (2, 0, 0), "b": (2, 1, 1), "c": (0, 0, 1)}
    assert [(e.round, e.client_id, e.kind) for e in again.events()] == [
        (2, "b", "refusal"),
        (2, "c", "refusal"),
    ]
    assert again.events()[0] == Event(2, "b", "refusal", refused.reason)
    assert [r.round for r in again.records()] == [1, 2]


def test_a_crash_between_the_files_and_the_commit_leaves_the_round_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, 2)
    before = store.versions()

    def crash(*args: object) -> None:
        raise KeyboardInterrupt("killed inside the commit transaction")

    monkeypatch.setattr(_ledger, "record_outcomes", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit(_state(3, 3.0), _report(3), {})
    monkeypatch.undo()
    assert len(_files(tmp_path / "versions")) == 4  # round 3's file is there, uncommitted

    again = RunStore.open(tmp_path, CONFIG)  # the restart
    latest = again.latest()
    assert latest is not None
    assert latest.state.round == 2
    assert again.versions() == before
    assert [r.round for r in again.records()] == [1, 2]
    # The replayed round commits as usual; in deployment it may differ (other participants).
    again.commit(_state(3, 33.0), _report(3), {})
    versions = again.versions()
    assert [v.round for v in versions] == [0, 1, 2, 3]
    assert _files(tmp_path / "versions") == sorted(f"{v.sha256}.safetensors" for v in versions)
    np.testing.assert_array_equal(again.load_version(3).flat, np.full(4, 33.0, np.float32))


def test_an_interrupted_transaction_leaves_the_last_round(tmp_path: Path) -> None:
    store = _store(tmp_path, 1)
    con = sqlite3.connect(tmp_path / "state.sqlite")
    con.execute("BEGIN")
    con.execute("INSERT INTO versions VALUES (2, 'ff', 'ee', 1, 'dd', 0)")
    con.close()  # never committed: as if the process died here
    latest = store.latest()
    assert latest is not None
    assert latest.state.round == 1


def test_rounds_are_committed_in_order_and_once(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, CONFIG)
    with pytest.raises(RunStoreError, match="commit before begin"):
        store.commit(_state(1, 1.0), _report(1), {})
    store.begin(_state(0, 0.0))
    with pytest.raises(RunStoreError, match="has begun already"):
        store.begin(_state(0, 0.0))
    store.commit(_state(1, 1.0), _report(1), {})
    for rnd in (1, 3):
        with pytest.raises(RunStoreError, match=f"cannot commit round {rnd} .* after round 1"):
            store.commit(_state(rnd, 9.0), _report(rnd), {})
    assert [v.round for v in store.versions()] == [0, 1]


def test_a_damaged_or_missing_version_file_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    last = store.versions()[-1]
    file = tmp_path / "versions" / f"{last.sha256}.safetensors"
    file.write_bytes(file.read_bytes()[:-3])
    with pytest.raises(RunStoreError, match=rf"round 2 of .* cannot be resumed: {file} is dam"):
        store.latest()
    with pytest.raises(RunStoreError, match=f"round 2's model version: {file} is damaged"):
        store.load_version(2)
    file.unlink()
    with pytest.raises(RunStoreError, match=f"{file} is missing; restore the file"):
        RunStore.open(tmp_path, CONFIG).latest()
    np.testing.assert_array_equal(store.load_version(1).flat, np.ones(4, np.float32))


def test_a_damaged_resume_state_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    (state,) = (tmp_path / "states").iterdir()
    state.write_bytes(b"\0" * 40)
    with pytest.raises(RunStoreError, match=f"round 2 of .* cannot be resumed: {state} is dam"):
        store.latest()


def test_a_damaged_database_is_named(tmp_path: Path) -> None:
    _store(tmp_path, 1)
    (tmp_path / "state.sqlite").write_bytes(b"not a database, but long enough to be read" * 50)
    with pytest.raises(RunStoreError, match=r"state\.sqlite is not a usable run store database"):
        RunStore.open(tmp_path, CONFIG)


def test_a_damaged_record_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        db.execute("UPDATE rounds SET record = '{\"round\": 2}' WHERE round = 2")
    with pytest.raises(RunStoreError, match=r"state\.sqlite rounds row 2: missing key"):
        store.records()


def test_retention_keeps_every_kth_and_the_last_k_and_every_row(tmp_path: Path) -> None:
    config = parse_config({"rounds": 8, "store": {"keep_every": 3, "keep_last": 2}})
    store = _store(tmp_path, 8, config)
    versions = store.versions()
    assert [v.round for v in versions if v.kept] == [0, 3, 6, 7, 8]
    assert [v.round for v in versions] == list(range(9))  # pruned rows stay, with parents
    assert [v.parent for v in versions[1:]] == [v.sha256 for v in versions[:-1]]
    assert _files(tmp_path / "versions") == sorted(
        f"{v.sha256}.safetensors" for v in versions if v.kept
    )
    assert len(_files(tmp_path / "states")) == 1  # resuming needs the last round's only
    np.testing.assert_array_equal(store.load_version(3).flat, np.full(4, 3.0, np.float32))
    with pytest.raises(
        RunStoreError, match=r"round 5's version .* was pruned .* \[0, 3, 6, 7, 8\]"
    ):
        store.load_version(5)
    latest = store.latest()
    assert latest is not None
    assert latest.state.round == 8


def test_keeping_only_the_last_version(tmp_path: Path) -> None:
    config = parse_config({"rounds": 4, "store": {"keep_every": 0, "keep_last": 1}})
    store = _store(tmp_path, 4, config)
    assert [v.round for v in store.versions() if v.kept] == [4]
    assert len(_files(tmp_path / "versions")) == 1
    assert [config.store.keeps(r, 4) for r in range(5)] == [False] * 4 + [True]


def test_the_store_table_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"store\.keep_last"):
        parse_config({"store": {"keep_last": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'store\.keep'"):
        parse_config({"store": {"keep": 1}})
    assert parse_config({}).store.keep_every == 1  # by default every version is kept


def test_versions_are_found_by_round_or_sha256_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    v1 = store.versions()[1]
    np.testing.assert_array_equal(store.load_version(v1.sha256[:8]).flat, np.ones(4, np.float32))
    assert (
        store.load_version(v1.sha256.upper()).flat.tobytes() == store.load_version(1).flat.tobytes()
    )
    with pytest.raises(RunStoreError, match="has no version 7"):
        store.load_version(7)
    with pytest.raises(RunStoreError, match="8\\+ digits"):
        store.load_version("abc")
    with pytest.raises(RunStoreError, match="8\\+ digits"):
        store.load_version(True)


# --- the encodings --------------------------------------------------------------------------


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
    strategy = build_strategy(parse_config({"strategy": {"name": "fedadam"}}))
    state = strategy.init(params)
    for _ in range(3):
        grad = rng.standard_normal(params.dim).astype(np.float32)
        flat, opt = strategy.server_optimizer.apply(state.optimizer, state.params.flat, grad)
        state = ServerState(state.round + 1, state.params.replace(flat), opt, state.update)
    update = {"control": rng.standard_normal(params.dim).astype(np.float32)}
    memories: dict[ClientId, ClientMemory] = {
        "00001": {CLIENT_CONTROL: rng.standard_normal(params.dim).astype(np.float32)},
        "hamlet/00004": {CLIENT_CONTROL: rng.standard_normal(params.dim).astype(np.float32)},
    }
    return ServerState(state.round, state.params, state.optimizer, update), memories


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].tobytes() == b[k].tobytes(), k


def test_the_encodings_round_trip_a_server_state_exactly() -> None:
    state, memories = fedadam_state()
    averaged = state.params.replace(state.params.flat + np.float32(0.5))  # 5.5 batches tracked
    params = decode_params(encode_params(averaged), "here")
    assert params.spec == averaged.spec
    assert params.flat.tobytes() == averaged.flat.tobytes()  # not cut back to int64
    data = encode_state(Checkpoint(state, memories))
    assert encode_state(Checkpoint(state, memories)) == data  # deterministic: content-addressed
    loaded = decode_state(data, state.params, "here")
    assert loaded.state.round == state.round == 3
    assert loaded.state.optimizer.step == state.optimizer.step == 3
    assert_same_arrays(dict(loaded.state.optimizer.slots), dict(state.optimizer.slots))
    assert_same_arrays(dict(loaded.state.update), dict(state.update))
    assert loaded.memories.keys() == memories.keys()  # an id with a "/" included
    for cid, memory in memories.items():
        assert_same_arrays(dict(loaded.memories[cid]), dict(memory))


def test_one_encoding_is_not_taken_for_the_other() -> None:
    state, _ = fedadam_state()
    with pytest.raises(CheckpointError, match="not a fedswarm state document"):
        decode_state(encode_params(state.params), state.params, "v.safetensors")
    with pytest.raises(CheckpointError, match=r"v\.safetensors is damaged"):
        decode_params(b"garbage", "v.safetensors")
