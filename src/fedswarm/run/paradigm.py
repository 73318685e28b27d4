"""A run's paradigm: what the round loop is, and what participants and transports need.

Federated runs are the default; ``[split]`` makes the run split learning
(:mod:`fedswarm.split`). The experiment and the coordinator ask the paradigm for its
message kinds (the transports), its handlers (the participants), its initial state and its
round loop, so neither knows which paradigm it runs. The bytes of every paradigm's
messages are one codec's, :func:`fedswarm.run.build.run_codec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fedswarm.client import BUILTIN_HANDLERS, Handler
from fedswarm.driver import FitProtocol, RoundPolicy, run_rounds
from fedswarm.kinds import BUILTIN_KINDS, MessageKinds
from fedswarm.params import Params
from fedswarm.reports import RoundReport
from fedswarm.rounds import fit_round
from fedswarm.strategy import FitStrategy, RunInfo, ServerState
from fedswarm.training import Evaluation
from fedswarm.transport.base import Transport

__all__ = ["Federated", "Paradigm", "ProtocolParts"]


class Paradigm(Protocol):
    @property
    def kinds(self) -> MessageKinds: ...
    @property
    def handlers(self) -> Mapping[type, Handler]: ...

    def initial_state(self, params: Params) -> ServerState: ...

    def run_rounds(
        self,
        transport: Transport,
        state: ServerState,
        *,
        rounds: int,
        run: RunInfo,
        policy: RoundPolicy,
        central_eval: Callable[[Params], Evaluation] | None,
        on_round: Callable[[ServerState, RoundReport], None],
        on_stop: Callable[[ServerState, str], None] = ...,
    ) -> ServerState:
        """Rounds up to ``rounds``; ``on_stop`` hears why the run ended early, if it did
        (a privacy budget spent)."""
        ...


@dataclass(frozen=True)
class ProtocolParts:
    """How a federated run's fit rounds run, the same in simulation and deployment: the
    round protocol, its message kinds, and the participants' extra handlers
    (plain fit rounds by default; secure aggregation's own with ``[secure_aggregation]``)."""

    fit_protocol: FitProtocol = fit_round
    kinds: MessageKinds = BUILTIN_KINDS
    handlers: tuple[tuple[type, Handler], ...] = ()


@dataclass(frozen=True)
class Federated:
    """Federated learning with ``strategy``: :func:`fedswarm.driver.run_rounds`, each fit
    round by ``parts.fit_protocol``."""

    strategy: FitStrategy
    parts: ProtocolParts = ProtocolParts()

    @property
    def kinds(self) -> MessageKinds:
        return self.parts.kinds

    @property
    def handlers(self) -> Mapping[type, Handler]:
        return {**BUILTIN_HANDLERS, **dict(self.parts.handlers)}

    def initial_state(self, params: Params) -> ServerState:
        return self.strategy.init(params)

    def run_rounds(
        self,
        transport: Transport,
        state: ServerState,
        *,
        rounds: int,
        run: RunInfo,
        policy: RoundPolicy,
        central_eval: Callable[[Params], Evaluation] | None,
        on_round: Callable[[ServerState, RoundReport], None],
        on_stop: Callable[[ServerState, str], None] = lambda s, why: None,
    ) -> ServerState:
        return run_rounds(
            self.strategy, transport, state, rounds=rounds, run=run, policy=policy,
            central_eval=central_eval, on_round=on_round, fit_protocol=self.parts.fit_protocol,
            on_stop=on_stop,
        )  # fmt: skip
