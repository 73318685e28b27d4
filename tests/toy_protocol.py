"""A toy two-exchange protocol written entirely outside the core, as a new protocol would be.

Round ``r``: each participant commits to a nonce drawn from its own secrets (exchange
``toy.commit``: it keeps the nonce in its session and sends its SHA-256), then reveals it
(exchange ``toy.reveal``); the coordinator checks each reveal against the commitment. It
needs what every multi-step protocol needs: its own message kinds (core registry, wire codec,
participant handlers), state kept between the exchanges of a round in the process that runs
the participant, and randomness the coordinator does not determine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.client import BUILTIN_HANDLERS, ClientApp, Handler, Session
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.entropy import OsSecrets, SecretSource, SimulatedSecrets
from fedswarm.kinds import BUILTIN_KINDS, MessageKind
from fedswarm.messages import ClientId, ClientMemory, Outcome, Stage
from fedswarm.params import Params
from fedswarm.rounds import Exchange
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.wire import Codec, Fields, Header, TensorReader, TensorWriter, default_codec

COMMIT, REVEAL = Stage("toy.commit"), Stage("toy.reveal")


@dataclass(frozen=True)
class CommitIns:
    run_id: str
    round: int


@dataclass(frozen=True)
class CommitRes:
    client_id: ClientId
    round: int
    digest: bytes


@dataclass(frozen=True)
class RevealIns:
    run_id: str
    round: int


@dataclass(frozen=True)
class RevealRes:
    client_id: ClientId
    round: int
    nonce: bytes


KINDS = BUILTIN_KINDS.extended(
    MessageKind(COMMIT, CommitIns, CommitRes), MessageKind(REVEAL, RevealIns, RevealRes)
)


def commit(
    app: ClientApp, ins: CommitIns, memory: ClientMemory, session: Session
) -> tuple[CommitRes, ClientMemory]:
    nonce = app.secrets.key(ins.round, "toy.nonce", 16)
    session.values["nonce"] = nonce
    return CommitRes(app.client_id, ins.round, hashlib.sha256(nonce).digest()), memory


def reveal(
    app: ClientApp, ins: RevealIns, memory: ClientMemory, session: Session
) -> tuple[RevealRes, ClientMemory]:
    if "nonce" not in session.values:
        raise RuntimeError(f"{app.client_id}: no commitment in this process for round {ins.round}")
    return RevealRes(app.client_id, ins.round, session.values["nonce"]), memory


HANDLERS: dict[type, Handler] = {**BUILTIN_HANDLERS, CommitIns: commit, RevealIns: reveal}


def _write_ins(m: CommitIns | RevealIns, t: TensorWriter, codec: Codec) -> Header:
    return {"run_id": m.run_id, "round": m.round}


def _write_commit(m: CommitRes, t: TensorWriter, codec: Codec) -> Header:
    t.blob("digest", m.digest)
    return {"client_id": m.client_id, "round": m.round}


def _write_reveal(m: RevealRes, t: TensorWriter, codec: Codec) -> Header:
    t.blob("nonce", m.nonce)
    return {"client_id": m.client_id, "round": m.round}


def _read_commit_ins(h: Fields, t: TensorReader, codec: Codec) -> CommitIns:
    return CommitIns(h.text("run_id"), h.integer("round"))


def _read_reveal_ins(h: Fields, t: TensorReader, codec: Codec) -> RevealIns:
    return RevealIns(h.text("run_id"), h.integer("round"))


def _read_commit(h: Fields, t: TensorReader, codec: Codec) -> CommitRes:
    return CommitRes(h.text("client_id"), h.integer("round"), t.blob("digest", max_len=32))


def _read_reveal(h: Fields, t: TensorReader, codec: Codec) -> RevealRes:
    return RevealRes(h.text("client_id"), h.integer("round"), t.blob("nonce", max_len=64))


def register(codec: Codec) -> None:
    """The toy kinds on the wire: what a protocol adds to a codec, in its own module."""
    codec.kinds.register("toy.commit_ins", CommitIns, write=_write_ins, read=_read_commit_ins)
    codec.kinds.register("toy.reveal_ins", RevealIns, write=_write_ins, read=_read_reveal_ins)
    codec.kinds.register("toy.commit_res", CommitRes, write=_write_commit, read=_read_commit)
    codec.kinds.register("toy.reveal_res", RevealRes, write=_write_reveal, read=_read_reveal)


CODEC = default_codec().extended(register)


def commit_reveal_round(
    run_id: str, rnd: int, clients: Sequence[ClientId]
) -> Generator[Exchange, Sequence[Outcome], dict[ClientId, bytes]]:
    """The coordinator's half: the nonces whose reveal matches the commitment."""
    outcomes = yield Exchange(COMMIT, tuple((c, CommitIns(run_id, rnd)) for c in clients))
    digests = {o.client_id: o.digest for o in outcomes if isinstance(o, CommitRes)}
    outcomes = yield Exchange(REVEAL, tuple((c, RevealIns(run_id, rnd)) for c in digests))
    return {
        o.client_id: o.nonce
        for o in outcomes
        if isinstance(o, RevealRes) and hashlib.sha256(o.nonce).digest() == digests[o.client_id]
    }


class NoLearner:
    """The toy protocol trains nothing."""

    def init_params(self, seed: int) -> Params:
        return Params.from_arrays({"w": np.zeros(1, np.float32)})

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        raise NotImplementedError

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        raise NotImplementedError


_EMPTY = ArrayDataset(np.zeros((0, 1), np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class ToyClients:
    """A picklable participant factory (for the process backend); with ``seed`` set, the
    participants' secrets are simulated from that run seed, else drawn from the OS."""

    seed: int | None = None

    def __call__(self, client_id: ClientId) -> ClientApp:
        secrets: SecretSource = OsSecrets()
        if self.seed is not None:
            secrets = SimulatedSecrets(self.seed, client_id)
        return ClientApp(client_id, NoLearner(), ClientData(_EMPTY, _EMPTY), HANDLERS, secrets)
