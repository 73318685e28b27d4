"""``fedswarm server``: run a config's rounds with participants on other machines.

The same strategy, round protocol and driver as a simulation (:func:`fedswarm.driver.
run_rounds`), over :class:`~fedswarm.transport.grpc.server.GrpcServerTransport` instead
of the in-memory transport. Before each round the coordinator re-reads the CRL if it changed
and waits for the configured participants (``[deployment] clients``, less those the CRL has
revoked since they joined) or ``join_timeout_s``, whichever comes first. After each round it
commits the state to the state directory (a :class:`~fedswarm.run.store.RunStore`), so a killed
coordinator restarted with the same arguments resumes at the next round. A round without a
quorum is played again once participants are back: nothing is committed for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from fedswarm.deploy.node import member_check, peer_check, tls_identity
from fedswarm.messages import ClientId, Outcome
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.settings import torch_settings
from fedswarm.reports import RoundReport
from fedswarm.rounds import QuorumError
from fedswarm.run.build import (
    data_spec,
    local_training,
    paradigm,
    round_policy,
    run_codec,
    run_strategy,
)
from fedswarm.run.config import RunConfig, dump_config
from fedswarm.run.models import model_factory
from fedswarm.run.paradigm import Paradigm
from fedswarm.run.participants import configured_dataset
from fedswarm.run.robust import fltrust_root
from fedswarm.run.store import RunStore
from fedswarm.security.pki import NodePaths, Role, TrustStore
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.transport.base import Fold, Request
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.server import GrpcServerTransport
from fedswarm.transport.grpc.tls import PeerCheck

__all__ = ["Coordinator", "parse_address"]

_log = logging.getLogger(__name__)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 0.0.0.0:8443 or 127.0.0.1:8443)")
    return host.strip("[]"), int(port)


@dataclass
class _Members:
    """The serial of each participant's certificate when it was last let in, so that the
    gate knows whom the CRL revokes: they will not come back, so no round waits for them."""

    _serials: dict[ClientId, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remembering(self, check: PeerCheck) -> PeerCheck:
        """``check``, noting whom it lets in with which certificate."""

        def checked(cert_pem: bytes) -> str:
            identity = check(cert_pem)  # verified: the certificate parses
            serial = x509.load_pem_x509_certificate(cert_pem).serial_number
            with self._lock:
                self._serials[identity] = serial
            return identity

        return checked

    def revoked(self, trust: TrustStore) -> list[ClientId]:
        with self._lock:
            return sorted(cid for cid, serial in self._serials.items() if serial in trust.revoked)


@dataclass
class _Gate:
    """The transport as the driver sees it: ``available()`` first picks up a renewed CRL,
    then waits for ``want`` participants, less those the CRL revokes. Everything else is the
    gRPC transport's."""

    inner: GrpcServerTransport
    want: int
    timeout_s: float
    crl: Path
    stop: threading.Event
    members: _Members = field(default_factory=_Members)
    _crl_mtime: float = field(default=0.0)
    _trust: TrustStore | None = None

    def available(self) -> Sequence[ClientId]:
        revoked = self._reload_crl()
        want = self.want - len(revoked)
        gone = f" ({len(revoked)} more revoked: {', '.join(revoked)})" if revoked else ""
        deadline = time.monotonic() + self.timeout_s
        last_said = 0.0
        while len(now := self.inner.available()) < want and not self.stop.is_set():
            if time.monotonic() >= deadline:
                _log.warning("going on with %d of %d participants%s", len(now), want, gone)
                break
            if time.monotonic() - last_said > 10:
                _log.info("waiting for participants: %d of %d connected%s", len(now), want, gone)
                last_said = time.monotonic()
            time.sleep(0.05)
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        return self.inner.exchange(requests, timeout=timeout, fold=fold)

    def _reload_crl(self) -> list[ClientId]:
        """Re-read the CRL if it changed; the members it revokes."""
        mtime = self.crl.stat().st_mtime if self.crl.exists() else 0.0
        if self._trust is None or mtime != self._crl_mtime:
            if self._trust is not None:
                _log.info("%s changed: reloading the revocation list", self.crl)
            self._trust = TrustStore.load(self.crl.parent)
            self.inner.reload_check(self.members.remembering(peer_check(self._trust, Role.CLIENT)))
            self._crl_mtime = mtime
        return self.members.revoked(self._trust)


@dataclass
class Coordinator:
    """One coordinator process's run; :meth:`run` plays every round left."""

    config: RunConfig
    node: NodePaths  # the coordinator's key and certificate
    pki: Path  # the directory with ca.crt and ca.crl
    state_dir: Path
    stop: threading.Event = field(default_factory=threading.Event)
    on_round: Callable[[RoundReport], None] = lambda r: None

    def run(self, listen: str) -> dict[str, Any]:
        """Serve on ``listen`` (HOST:PORT) until the last round; returns the summary (empty
        if stopped before the last round)."""
        cfg = self.config
        store = RunStore.open(self.state_dir, cfg)
        dataset = configured_dataset(data_spec(cfg.data, cfg.seed))  # schema, central test
        model_fn = model_factory(cfg.model, dataset)
        learner, run = TorchLearner(model_fn), RunInfo(store.run_id, cfg.seed)
        if cfg.attack is not None:
            raise ValueError(
                "[attack] simulates Byzantine participants in `fedswarm run`; to test a "
                "deployment's defences start some participants with `fedswarm client --attack`"
            )
        root = fltrust_root(cfg, dataset, model_fn, local_training(cfg))  # FLTrust's root data
        verify = member_check(self.pki / "ca.crt")  # secure aggregation's keys, against the CA
        rounds = paradigm(cfg, run_strategy(cfg, root=root), model_fn, verify=verify)
        with torch_settings(cfg.simulation.threads):
            start = store.latest() or store.begin(
                rounds.initial_state(learner.init_params(cfg.seed))
            )
        state = start.state
        spec = RunSpec(
            run.run_id, dump_config(cfg), dataset.name, dataset.input_shape, dataset.num_classes
        )
        members = _Members()
        transport = self._transport(spec, rounds, members)
        host, port = parse_address(listen)
        transport.start(host, port)
        _log.info("run %s: on %s:%d after round %d", run.run_id, host, transport.port, state.round)
        central = None
        if cfg.evaluation.central:
            central = lambda p: learner.evaluate(p, dataset.central_test)  # noqa: E731

        def commit(s: ServerState, report: RoundReport) -> None:
            store.commit(s, report, {})  # participants keep their memories themselves
            store.refused(transport.take_refusals(), s.round)
            store.seen(transport.available())
            self.on_round(report)

        gate = self._gate(transport, members)
        stopped: list[str] = []  # why a privacy budget ended the run, if it did
        try:
            with torch_settings(cfg.simulation.threads):
                while state.round < cfg.rounds and not self.stop.is_set():
                    try:
                        state = rounds.run_rounds(
                            gate, state, rounds=cfg.rounds, run=run,
                            policy=round_policy(cfg), central_eval=central, on_round=commit,
                            on_stop=lambda s, why: stopped.append(why),
                        )  # fmt: skip
                        if stopped:
                            _log.warning("%s", stopped[-1])
                            break
                    except QuorumError as err:  # nothing was committed: play it again
                        _log.warning("%s; playing the round again", err)
                        state = (store.latest() or start).state
                        self.stop.wait(1.0)
            return store.finish(state) if state.round >= cfg.rounds or stopped else {}
        finally:
            transport.stop()

    def _transport(self, spec: RunSpec, rounds: Paradigm, members: _Members) -> GrpcServerTransport:
        d = self.config.deployment
        return GrpcServerTransport(
            tls_identity(self.node),
            members.remembering(peer_check(TrustStore.load(self.pki), Role.CLIENT)),
            max_message_bytes=d.max_message_mb << 20,
            max_uploads=d.max_uploads,
            max_downloads=d.max_downloads,
            run=spec,
            codec=run_codec(),
            kinds=rounds.kinds,
        )

    def _gate(self, transport: GrpcServerTransport, members: _Members) -> _Gate:
        cfg = self.config
        want = cfg.deployment.clients or cfg.data.num_clients or cfg.strategy.min_replies
        crl = self.pki / "ca.crl"
        return _Gate(transport, want, cfg.deployment.join_timeout_s, crl, self.stop, members)
