"""SecAgg+ across processes: ``fedswarm server`` and five participant processes on loopback
over mutual TLS, one killed after sharing its keys. The round completes without it, and the
final model equals the simulation of the same seed and dropout pattern (within the
quantisation bound: deployed participants round with their own OS randomness). Advertised
keys are signed with node keys and checked against the federation's CA."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from fedswarm.deploy.node import member_check, node_binding
from fedswarm.run.build import build
from fedswarm.run.config import loads_config
from fedswarm.secagg._context import advert_bytes
from fedswarm.secagg.messages import MASKED_INPUT, AdvertiseRes
from fedswarm.secagg.simulation import StageDropouts
from fedswarm.security.pki import Role, init_ca, issue
from test_deploy import Fleet, _free_port


def test_node_keys_bind_advertised_keys_to_their_owner(tmp_path: Path) -> None:
    init_ca(tmp_path / "ca")
    other = tmp_path / "other"
    init_ca(other)
    nodes = {n: issue(tmp_path / "ca", n, Role.CLIENT) for n in ("a", "b")}
    stranger = issue(other, "a", Role.CLIENT)  # "a" too, from another CA
    check = member_check(tmp_path / "ca" / "ca.crt")
    a, b, s = node_binding(nodes["a"]), node_binding(nodes["b"]), node_binding(stranger)
    keys = (b"e" * 32, b"m" * 32)
    data = advert_bytes("run", 1, "a", *keys)
    good = AdvertiseRes("a", 1, *keys, a.sign(data), a.certificate)
    assert check(good, data)
    swapped = advert_bytes("run", 1, "a", b"x" * 32, keys[1])  # the coordinator's own key
    assert not check(good, swapped)
    assert not check(replace(good, client_id="b"), advert_bytes("run", 1, "b", *keys))
    assert not check(replace(good, signature=b.sign(data), certificate=b.certificate), data)
    assert not check(replace(good, signature=s.sign(data), certificate=s.certificate), data)
    assert not check(replace(good, certificate=b"not a certificate"), data)


AGENT = Path(__file__).with_name("secagg_agent.py")
NAMES = ("00000", "00001", "00002", "00003", "00004")
VICTIM = "00003"
CONFIG = """
seed = 5
rounds = 2
[data]
num_clients = 5
[client]
batch_size = 16
epochs = 1
[strategy]
min_replies = 2
[simulation]
backend = "sequential"
[deployment]
join_timeout_s = 8
[secure_aggregation]
protocol = "secagg+"
degree = 2
threshold = 2
"""


@pytest.mark.slow
def test_secagg_over_grpc_survives_a_participant_killed_after_sharing_keys(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    init_ca(pki)
    issue(pki, "coordinator", Role.SERVER, hosts=("127.0.0.1",))
    for name in NAMES:
        issue(pki, name, Role.CLIENT)
    config = tmp_path / "federation.toml"
    config.write_text(CONFIG)
    fleet, port, state = Fleet(tmp_path), _free_port(), tmp_path / "state"
    try:
        fleet.fedswarm(
            "server", "server", str(config), "--pki", str(pki), "--listen",
            f"127.0.0.1:{port}", "--state", str(state),
        )  # fmt: skip
        for name in NAMES:
            extra = ("quit",) if name == VICTIM else ()
            fleet.start(name, str(AGENT), f"127.0.0.1:{port}", str(pki), name, *extra)
        assert fleet.wait("server", 240) == 0, fleet.log("server")
        assert fleet.wait(VICTIM, 30) == 3
        assert "killed after sharing keys" in fleet.log(VICTIM)
    finally:
        fleet.kill_all()
    with sqlite3.connect(state / "state.sqlite") as con:
        rows = {
            r: json.loads(t)["num_clients"]
            for r, t in con.execute("SELECT round, record FROM rounds")
        }
    assert rows == {1: 4, 2: 4}  # round 1 completed without the victim's input
    deployed = load_file(str(state / "model.safetensors"))
    simulated = _simulate_with_the_same_dropouts(config.read_text())
    assert deployed.keys() == simulated.keys()
    for k in deployed:
        np.testing.assert_allclose(deployed[k], simulated[k], atol=1e-5)
        assert not np.array_equal(deployed[k], np.zeros_like(deployed[k]))


def _simulate_with_the_same_dropouts(text: str) -> dict[str, np.ndarray]:
    exp = build(loads_config(text))
    transport = exp.transport()
    try:
        final = exp.rounds.run_rounds(
            StageDropouts(transport, {MASKED_INPUT: {VICTIM}}), exp.initial_state(),
            rounds=exp.config.rounds, run=exp.run, policy=exp.policy, central_eval=None,
            on_round=lambda s, r: None,
        )  # fmt: skip
    finally:
        transport.close()
    return final.params.arrays()
