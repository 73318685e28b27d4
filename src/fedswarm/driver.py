"""The round loop: a replaceable driver that moves protocol messages over a transport.

Strategies do not own the loop. :func:`run_rounds` is the default driver; it resumes
from any :class:`~fedswarm.strategy.ServerState` (``state.round`` rounds already done),
so a restart continues from the last completed round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fedswarm.aggregation import score_metrics
from fedswarm.messages import ClientId, Outcome
from fedswarm.params import Params
from fedswarm.reports import RoundReport
from fedswarm.rounds import Exchange, RoundProtocol, evaluate_round, fit_round
from fedswarm.sampling import Sampler
from fedswarm.seeding import round_rng
from fedswarm.strategy import Budgeted, FitStrategy, RunInfo, ServerState
from fedswarm.training import Evaluation
from fedswarm.transport.base import Transport

__all__ = ["FitProtocol", "RoundPolicy", "pump", "run_rounds"]

T = TypeVar("T")

FitProtocol = Callable[
    [FitStrategy, ServerState, Sequence[ClientId], RunInfo, int, bool], RoundProtocol
]
"""How a fit round runs: ``(strategy, state, available, run, min_replies, keep_updates) ->
protocol``.
:func:`~fedswarm.rounds.fit_round` by default; secure aggregation runs its own."""


@dataclass(frozen=True)
class RoundPolicy:
    """Rules the driver enforces: quorum, deadline and when to evaluate."""

    min_replies: int = 1
    timeout_s: float | None = None
    evaluate_every: int = 1  # central/federated evaluation every k rounds and at the end
    federated_eval: Sampler | None = None  # who evaluates on local test data; None: nobody
    keep_updates: bool = False  # hand each round's counted updates to ``on_round``

    def __post_init__(self) -> None:
        if self.min_replies < 1 or self.evaluate_every < 1:
            raise ValueError("min_replies and evaluate_every must be at least 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")


def pump(
    protocol: Generator[Exchange, Sequence[Outcome], T],
    transport: Transport,
    timeout: float | None,
) -> T:
    """Drive a protocol to completion, moving each exchange over ``transport``."""
    try:
        exchange = next(protocol)
        while True:
            outcomes = transport.exchange(exchange.requests, timeout=timeout, fold=exchange.fold)
            exchange = protocol.send(outcomes)
    except StopIteration as done:
        result: T = done.value
        return result


def run_rounds(
    strategy: FitStrategy,
    transport: Transport,
    state: ServerState,
    *,
    rounds: int,
    run: RunInfo,
    policy: RoundPolicy = RoundPolicy(),
    central_eval: Callable[[Params], Evaluation] | None = None,
    on_round: Callable[[ServerState, RoundReport], None] = lambda s, r: None,
    fit_protocol: FitProtocol = fit_round,
    on_stop: Callable[[ServerState, str], None] = lambda s, why: None,
) -> ServerState:
    """Run rounds ``state.round + 1 .. rounds`` (``rounds`` is the total, not "more").

    ``on_round`` sees each completed round; a resumed state continues where it stopped.
    ``fit_protocol`` runs each fit round (a multi-exchange protocol such as secure
    aggregation in place of the one-exchange :func:`~fedswarm.rounds.fit_round`). A
    :class:`~fedswarm.strategy.Budgeted` strategy may end the run early: ``on_stop`` is
    told why, and the state of the last round run is returned.
    """
    while state.round < rounds:
        if isinstance(strategy, Budgeted) and (why := strategy.exhausted(state)) is not None:
            on_stop(state, why)
            break
        available = transport.available()  # may wait for participants: not round time
        start = time.perf_counter()
        result = pump(
            fit_protocol(strategy, state, available, run, policy.min_replies, policy.keep_updates),
            transport,
            policy.timeout_s,
        )
        seconds = time.perf_counter() - start
        state = result.state
        central, federated = _evaluate(state, rounds, run, transport, policy, central_eval)
        on_round(
            state,
            RoundReport(
                round=state.round,
                num_clients=result.summary.num_replies,
                num_failures=len(result.failures),
                train_loss=result.summary.train_loss,
                update_norm=result.summary.update_norm,
                seconds=seconds,
                central=central,
                federated=federated,
                replied=result.replied,
                failures=result.failures,
                metrics={**score_metrics(result.summary.scores), **result.summary.metrics},
                scores=result.summary.scores,
                clients=result.clients,
                updates=result.updates,
            ),
        )
    return state


def _evaluate(
    state: ServerState,
    rounds: int,
    run: RunInfo,
    transport: Transport,
    policy: RoundPolicy,
    central_eval: Callable[[Params], Evaluation] | None,
) -> tuple[Evaluation | None, Evaluation | None]:
    if state.round % policy.evaluate_every and state.round != rounds:
        return None, None
    central = central_eval(state.params) if central_eval else None
    federated = None
    if policy.federated_eval is not None:
        rng = round_rng(run.seed, state.round, "evaluate")
        clients = policy.federated_eval.sample(transport.available(), rng)
        federated = pump(
            evaluate_round(state.params, clients, run, state.round), transport, policy.timeout_s
        )
    return central, federated
