"""Split learning over other transports: worker processes and gRPC with mutual TLS give the
in-memory run's bits; cut-layer protection."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import split_helpers as h
from fedswarm.deploy.node import peer_check, tls_identity
from fedswarm.entropy import SimulatedSecrets
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.security.pki import Role, TrustStore, init_ca, issue
from fedswarm.simulation.process import ProcessBackend
from fedswarm.split import CODEC, KINDS, Protection, SplitMode, SplitPlan, SplitProtocol
from fedswarm.split.participant import protect
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.training import LocalTraining
from fedswarm.transport.grpc.client import Backoff, run_participant
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.server import GrpcServerTransport

RUN = RunInfo("split-run", 5)
TRAINING = LocalTraining(batch_size=8, lr=0.1, momentum=0.5)


def _protocol(mode: SplitMode, **kw: object) -> SplitProtocol:
    head = "net.5" if mode is SplitMode.U_SHAPED else None
    plan = SplitPlan.cutting(h.MODEL, "net.2", head)
    return SplitProtocol(plan, mode, TRAINING, batches_per_exchange=2, **kw)  # type: ignore[arg-type]


def _start(protocol: SplitProtocol) -> ServerState:
    return protocol.initial_state(TorchLearner(h.MODEL).init_params(1))


@pytest.mark.slow
def test_worker_processes_give_the_in_memory_bits() -> None:
    protocol = _protocol(SplitMode.SPLITFED_V1)
    expected = protocol.run_rounds(
        h.transport(protocol.plan, 4), _start(protocol), rounds=2, run=RUN
    )
    backend = ProcessBackend(workers=2)
    try:
        transport = h.transport(protocol.plan, 4, backend=backend, fail_fast=False)
        got = protocol.run_rounds(transport, _start(protocol), rounds=2, run=RUN)
    finally:
        backend.close()
    assert np.array_equal(got.params.flat, expected.params.flat)


def test_over_grpc_with_mutual_tls_a_run_gives_the_in_memory_bits(tmp_path: Path) -> None:
    protocol = _protocol(SplitMode.U_SHAPED)
    clients = 3
    expected = protocol.run_rounds(
        h.transport(protocol.plan, clients), _start(protocol), rounds=2, run=RUN
    )
    init_ca(tmp_path)
    server = GrpcServerTransport(
        tls_identity(issue(tmp_path, "coordinator", Role.SERVER)),
        peer_check(TrustStore.load(tmp_path), Role.CLIENT),
        run=RunSpec(RUN.run_id, ""),
        codec=CODEC,
        kinds=KINDS,
    )
    port = server.start()
    stop, threads = threading.Event(), []
    for i in range(clients):
        cid = f"p{i}"
        node = tls_identity(issue(tmp_path, cid, Role.CLIENT))
        app = h.Participants(protocol.plan)(cid)
        t = threading.Thread(
            target=run_participant,
            args=(f"127.0.0.1:{port}", node, lambda spec, app=app: app, stop),
            kwargs={"backoff": Backoff(0.05, 0.2, 5.0), "codec": CODEC, "kinds": KINDS},
        )
        t.start()
        threads.append(t)
    try:
        deadline = time.monotonic() + 30
        while len(server.available()) < clients:
            assert time.monotonic() < deadline, "participants did not connect"
            time.sleep(0.02)
        got = protocol.run_rounds(server, _start(protocol), rounds=2, run=RUN)
    finally:
        stop.set()
        server.stop(grace=1.0)
        for t in threads:
            t.join(timeout=10)
    assert np.array_equal(got.params.flat, expected.params.flat)
    assert server.refusals == {}


def test_protection_clips_each_example_and_adds_the_participants_own_noise() -> None:
    acts = (torch.randn(6, 5) * 10).requires_grad_()
    clipped = protect(acts, Protection(clip=1.0), np.random.default_rng(0))
    assert torch.all(clipped.norm(dim=1) <= 1.0 + 1e-6)
    clipped.sum().backward()  # type: ignore[no-untyped-call]
    assert acts.grad is not None  # the clip is part of the participant's forward pass
    a = protect(acts, Protection(1.0, 0.5), SimulatedSecrets(0, "p0").generator(1, "split.noise"))
    b = protect(acts, Protection(1.0, 0.5), SimulatedSecrets(0, "p1").generator(1, "split.noise"))
    assert not torch.equal(a, b)  # noise from each participant's own secrets


def test_protected_training_still_learns_and_differs_from_unprotected() -> None:
    plain = _protocol(SplitMode.VANILLA)
    noisy = _protocol(SplitMode.VANILLA, protection=Protection(clip=2.0, noise=0.1))
    a = plain.run_rounds(h.transport(plain.plan, 2), _start(plain), rounds=2, run=RUN)
    b = noisy.run_rounds(h.transport(noisy.plan, 2), _start(noisy), rounds=2, run=RUN)
    assert not np.array_equal(a.params.flat, b.params.flat)
    assert np.all(np.isfinite(b.params.flat))
