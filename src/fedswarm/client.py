"""A participant: answers instructions with its own learner, data and secrets.

Dispatch is by registry: :attr:`ClientApp.handlers` maps each instruction type to the
participant half of its protocol. Fit and evaluate are :data:`BUILTIN_HANDLERS`; a protocol
with its own messages extends the mapping (``{**BUILTIN_HANDLERS, MyIns: my_handler}``), and
an instruction no handler knows is an :class:`~fedswarm.kinds.UnknownMessageKind`.

A handler sees two kinds of participant state. ``memory`` is what the participant keeps
between rounds (SCAFFOLD's control variate): returned, never sent, checkpointed in
simulation as the participant's disk would keep it. A :class:`Session` is what it keeps
between the exchanges of one round of a multi-step protocol (secure-aggregation keys, the
activations and autograd graph of split learning): held in the process that runs the
participant, dropped when the next round begins, and never pickled or checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from fedswarm.data.arrays import ClientData
from fedswarm.entropy import OsSecrets, SecretSource
from fedswarm.kinds import UnknownMessageKind
from fedswarm.learner import Learner
from fedswarm.messages import (
    ClientId,
    ClientMemory,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Instruction,
    Reply,
)
from fedswarm.training import GradientCorrection, LocalFit
from fedswarm.transforms import TransformRandomness, apply_transforms

__all__ = ["BUILTIN_HANDLERS", "ClientApp", "Handler", "LocalFitHandler", "Session", "Sessions"]


class Session:
    """One participant's state between the exchanges of one round (see the module doc)."""

    def __init__(self, client_id: ClientId, round_: int) -> None:
        self.client_id = client_id
        self.round = round_
        self.values: dict[str, Any] = {}

    @property
    def is_open(self) -> bool:
        """Whether a handler left state in it (later exchanges must reach this process)."""
        return bool(self.values)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"the session of participant {self.client_id!r} (round {self.round}) is never "
            "pickled or checkpointed: it holds secrets and live state of one round"
        )


@dataclass(eq=False)
class Sessions:
    """The sessions of the participants one process runs: one per participant, for the
    newest round seen; a job of a later round drops every older session."""

    _by_client: dict[ClientId, Session] = field(default_factory=dict)
    _round: int = -1

    def get(self, client_id: ClientId, round_: int) -> Session:
        if round_ > self._round:
            self._round = round_
            self._by_client = {c: s for c, s in self._by_client.items() if s.round >= round_}
        session = self._by_client.get(client_id)
        if session is None or session.round != round_:
            session = self._by_client[client_id] = Session(client_id, round_)
        return session

    def __reduce__(self) -> NoReturn:
        raise TypeError("participants' sessions are never pickled or checkpointed")


Handler = Callable[["ClientApp", Any, ClientMemory, Session], tuple[Reply, ClientMemory]]
"""The participant half of a message kind: ``(app, instruction, memory, session) ->
(reply, memory)``."""


@dataclass(frozen=True)
class ClientApp:
    """Handles one instruction at a time; its memory is passed in and handed back.

    ``secrets`` is randomness only this participant holds (:mod:`fedswarm.entropy`): the OS's
    by default; simulation passes its reproducible stand-in.
    """

    client_id: ClientId
    learner: Learner
    data: ClientData
    handlers: Mapping[type, Handler] = field(default_factory=lambda: BUILTIN_HANDLERS)
    secrets: SecretSource = field(default_factory=OsSecrets)

    def handle(
        self, ins: Instruction, memory: ClientMemory, session: Session | None = None
    ) -> tuple[Reply, ClientMemory]:
        handler = self.handlers.get(type(ins))
        if handler is None:
            known = ", ".join(sorted(t.__name__ for t in self.handlers)) or "none"
            raise UnknownMessageKind(
                f"participant {self.client_id!r} has no handler for a "
                f"{type(ins).__qualname__} (it handles {known}): build its ClientApp with "
                "the protocol's handlers"
            )
        return handler(self, ins, memory, session or Session(self.client_id, ins.round))

    def fit(self, ins: FitIns, memory: ClientMemory) -> tuple[FitRes, ClientMemory]:
        correction = self.prepare_fit(ins, memory)
        fit = self.learner.fit(ins.params, self.data.train, ins.training, correction, ins.seed)
        return self.complete_fit(ins, memory, fit)

    # The two halves around local training, for backends that train many clients at once.
    def prepare_fit(self, ins: FitIns, memory: ClientMemory) -> GradientCorrection:
        return ins.step.correction(memory, ins.params.dim)

    def complete_fit(
        self, ins: FitIns, memory: ClientMemory, fit: LocalFit
    ) -> tuple[FitRes, ClientMemory]:
        update = fit.params - ins.params.flat
        extra, memory = ins.step.finish(memory, update, fit, ins.training)  # from the raw update
        if ins.transforms:
            rng = TransformRandomness(ins.seed, self.secrets.generator(ins.round, "transforms"))
            update = apply_transforms(ins.transforms, update, rng)
        res = FitRes(
            client_id=self.client_id,
            round=ins.round,
            update=update,
            num_examples=fit.num_examples,
            num_steps=fit.num_steps,
            train_loss=fit.train_loss,
            extra=extra,
        )
        return res, memory

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        ev = self.learner.evaluate(ins.params, self.data.test)
        return EvaluateRes(self.client_id, ins.round, ev.loss, ev.accuracy, ev.num_examples)


@dataclass(frozen=True)
class LocalFitHandler:
    """The built-in fit: local training, the client step's finish, the update transforms.
    Its type declares that backends may train many such participants at once (``fit_many``
    on the two halves :meth:`ClientApp.prepare_fit` and :meth:`ClientApp.complete_fit`)."""

    def __call__(
        self, app: ClientApp, ins: FitIns, memory: ClientMemory, session: Session
    ) -> tuple[Reply, ClientMemory]:
        return app.fit(ins, memory)


def _evaluate(
    app: ClientApp, ins: EvaluateIns, memory: ClientMemory, session: Session
) -> tuple[Reply, ClientMemory]:
    return app.evaluate(ins), memory


BUILTIN_HANDLERS: Mapping[type, Handler] = {FitIns: LocalFitHandler(), EvaluateIns: _evaluate}
