"""A run's paradigm: what the round loop is, and what participants and transports need.

Federated runs are the default; ``[split]`` makes the run split learning
(:mod:`fedswarm.split`). The experiment and the coordinator ask the paradigm for its
message kinds and codec (the transports), its handlers (the participants), its initial
state and its round loop, so neither knows which paradigm it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fedswarm.client import BUILTIN_HANDLERS, Handler
from fedswarm.driver import RoundPolicy, run_rounds
from fedswarm.kinds import BUILTIN_KINDS, MessageKinds
from fedswarm.params import Params
from fedswarm.reports import RoundReport
from fedswarm.strategy import RunInfo, ServerState, Strategy
from fedswarm.training import Evaluation
from fedswarm.transport.base import Transport
from fedswarm.wire import Codec, default_codec

__all__ = ["Federated", "Paradigm"]


class Paradigm(Protocol):
    @property
    def kinds(self) -> MessageKinds: ...
    @property
    def codec(self) -> Codec: ...
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
    ) -> ServerState: ...


@dataclass(frozen=True)
class Federated:
    """Federated learning with ``strategy``: :func:`fedswarm.driver.run_rounds`."""

    strategy: Strategy

    @property
    def kinds(self) -> MessageKinds:
        return BUILTIN_KINDS

    @property
    def codec(self) -> Codec:
        return default_codec()

    @property
    def handlers(self) -> Mapping[type, Handler]:
        return BUILTIN_HANDLERS

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
    ) -> ServerState:
        return run_rounds(
            self.strategy, transport, state, rounds=rounds, run=run, policy=policy,
            central_eval=central_eval, on_round=on_round,
        )  # fmt: skip
