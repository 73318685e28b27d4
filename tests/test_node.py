"""A participant's setup from the coordinator's run spec: its data, its model, its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedswarm.deploy.node import PARTITION, NodeSetupError, find_node, load_npz, participant_factory
from fedswarm.run.build import build, build_strategy
from fedswarm.run.config import dump_config, parse_config
from fedswarm.security.pki import Role, init_ca, issue
from fedswarm.training import GradientCorrection
from fedswarm.transport.grpc.frames import RunSpec

CONFIG = parse_config({"rounds": 1, "data": {"num_clients": 3}})


def _spec() -> RunSpec:
    exp = build(CONFIG)
    d = exp.dataset
    return RunSpec("run-1", dump_config(CONFIG), d.name, d.input_shape, d.num_classes)


def test_a_partition_participant_gets_the_simulation_client_data() -> None:
    app = participant_factory("00001", PARTITION)(_spec())
    expected = build(CONFIG).dataset.client("00001")
    np.testing.assert_array_equal(app.data.train.x, expected.train.x)
    np.testing.assert_array_equal(app.data.test.y, expected.test.y)
    with pytest.raises(NodeSetupError, match="'hospital' is not a client of the digits"):
        participant_factory("hospital", PARTITION)(_spec())


def test_own_arrays_from_npz_train_the_run_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.normal(size=(40, 64)), y_train=rng.integers(0, 10, 40))
    app = participant_factory("00000", str(path))(_spec())
    assert app.data.train.x.dtype == np.float32
    assert len(app.data.test) == 0  # no x_test: nothing to evaluate locally
    params = app.learner.init_params(0)
    training = build_strategy(CONFIG).training
    fit = app.learner.fit(params, app.data.train, training, GradientCorrection(), 1)
    assert fit.num_examples == 40
    assert fit.params.shape == params.flat.shape


@pytest.mark.parametrize(
    ("arrays", "error"),
    [
        ({"x_train": np.zeros((4, 64))}, r"lacks \['y_train'\]"),
        ({"x_train": np.zeros((4, 63)), "y_train": np.zeros(4, int)}, r"shape \(63,\).*\(64,\)"),
        ({"x_train": np.zeros((4, 64)), "y_train": np.full(4, 10)}, r"labels must be 0\.\.9"),
        ({"x_train": np.zeros((4, 64)), "y_train": np.zeros(4)}, "integer class ids"),
    ],
)
def test_unusable_npz_data_is_named(
    tmp_path: Path, arrays: dict[str, np.ndarray], error: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(NodeSetupError, match=error):
        participant_factory("00000", str(path))(_spec())
    with pytest.raises(NodeSetupError, match="no such file"):
        load_npz(tmp_path / "missing.npz")


def test_credentials_are_found_or_the_error_says_what_to_do(tmp_path: Path) -> None:
    init_ca(tmp_path)
    issue(tmp_path, "coordinator", Role.SERVER)
    issue(tmp_path, "00000", Role.CLIENT)
    assert find_node(tmp_path, Role.SERVER).name == "coordinator"  # the only server
    assert find_node(tmp_path, Role.CLIENT, "00000").cert.name == "00000.crt"
    with pytest.raises(NodeSetupError, match="fedswarm ca issue nobody --role client"):
        find_node(tmp_path, Role.CLIENT, "nobody")
    with pytest.raises(NodeSetupError, match="is a client certificate"):
        find_node(tmp_path, Role.SERVER, "00000")
    with pytest.raises(NodeSetupError, match=r"ca\.crt is missing"):
        find_node(tmp_path / "nodes", Role.CLIENT, "00000")
