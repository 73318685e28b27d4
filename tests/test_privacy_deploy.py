"""``fedswarm server``/``client`` with ``[privacy]``: the coordinator adds the noise (central)
or the participants do (local), from the OS's entropy, and the run spends the epsilon its
simulation reports (the same sampled rounds, the same events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate
from fedswarm.security.pki import Role, init_ca, issue
from test_deploy import NAMES, Fleet, _free_port, _start_clients, _start_coordinator

CONFIG = """
seed = 4
rounds = 3
[data]
num_clients = 5
[client]
batch_size = 16
steps = 2
[strategy]
sampling = "poisson"
fraction = 0.6
weighting = "uniform"
[simulation]
backend = "sequential"
[deployment]
join_timeout_s = 60
[privacy]
mechanism = "{mechanism}"
noise_multiplier = 1.0
clip_norm = 0.5
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    issue(root, "coordinator", Role.SERVER, hosts=("127.0.0.1",))
    for name in NAMES:
        issue(root, name, Role.CLIENT)
    return root


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.kill_all()


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["central", "local"])
def test_a_private_deployment_spends_what_its_simulation_spends(
    pki: Path, fleet: Fleet, mechanism: str
) -> None:
    config = fleet.dir / "federation.toml"
    config.write_text(CONFIG.format(mechanism=mechanism))
    port = _free_port()
    _start_coordinator(fleet, config, pki, port, "server")
    _start_clients(fleet, pki, port, NAMES)
    assert fleet.wait("server") == 0, fleet.log("server")
    simulate(loads_config(config.read_text()), fleet.dir / "sim")
    deployed = json.loads((fleet.dir / "state" / "summary.json").read_text())
    simulated = json.loads((fleet.dir / "sim" / "summary.json").read_text())
    assert deployed["privacy"] == simulated["privacy"]
    assert deployed["privacy"]["rounds"] == 3
    assert deployed["privacy"]["mechanism"] == mechanism
    # The noise is the OS's in deployment and the run seed's in simulation: the models differ.
    assert deployed["model_sha256"] != simulated["model_sha256"]
