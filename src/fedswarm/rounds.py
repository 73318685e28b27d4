"""Round protocols: generators that yield message exchanges and never touch a network.

A protocol yields an :class:`Exchange` (instructions for some participants), receives
the outcomes, and finally returns its result. A driver moves the messages (see
:func:`fedswarm.driver.pump`). A plain fit round is a one-exchange protocol; multi-step
protocols (secure aggregation, split learning, swarm merge) are longer generators of the
same kind, so one driver and one transport serve them all.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.aggregate import Weighting
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.learner import Evaluation
from fedswarm.messages import (
    ClientId,
    EvaluateIns,
    EvaluateRes,
    Failure,
    FitRes,
    Outcome,
    Stage,
)
from fedswarm.params import Params
from fedswarm.strategy import FitSummary, RunInfo, ServerState, Strategy
from fedswarm.transport.base import Request

__all__ = [
    "Exchange",
    "FitRoundResult",
    "QuorumError",
    "RoundProtocol",
    "accept_evaluate_replies",
    "accept_fit_replies",
    "evaluate_round",
    "fit_round",
]


@dataclass(frozen=True)
class Exchange:
    stage: Stage
    requests: tuple[Request, ...]


RoundProtocol = Generator[Exchange, Sequence[Outcome], "FitRoundResult"]


class QuorumError(RuntimeError):
    """Too few participants replied for the round to count."""


@dataclass(frozen=True)
class FitRoundResult:
    state: ServerState
    summary: FitSummary
    failures: tuple[Failure, ...]


def fit_round(
    strategy: Strategy,
    state: ServerState,
    available: Sequence[ClientId],
    run: RunInfo,
    min_replies: int = 1,
) -> RoundProtocol:
    """Sample, instruct, collect, validate and aggregate one round."""
    requests = strategy.configure_fit(state, available, run)
    outcomes = yield Exchange(Stage.FIT, tuple(requests))
    rnd = state.round + 1
    replies, failures = accept_fit_replies(
        outcomes, {cid for cid, _ in requests}, rnd, state.params.dim, strategy.client_update
    )
    if strategy.weighting is Weighting.EXAMPLES:  # a zero-weight reply cannot count
        replies, idle = _split_idle(replies)
        failures += idle
    if len(replies) < max(min_replies, 1):
        reasons = "; ".join(f"{f.client_id}: {f.reason}" for f in failures[:5])
        raise QuorumError(
            f"round {rnd}: {len(replies)} of {len(requests)} participants replied, "
            f"the quorum is {max(min_replies, 1)}. Failures: {reasons or 'none'}"
        )
    new_state, summary = strategy.aggregate_fit(state, replies, len(available))
    return FitRoundResult(new_state, summary, tuple(failures))


def _split_idle(replies: list[FitRes]) -> tuple[list[FitRes], list[Failure]]:
    idle = [r for r in replies if r.num_examples == 0]
    failures = [Failure(r.client_id, r.round, Stage.FIT, "trained on no examples") for r in idle]
    return [r for r in replies if r.num_examples > 0], failures


def _stranger(client_id: ClientId, round_: int, pending: set[ClientId], rnd: int) -> str | None:
    if client_id not in pending:
        return "reply from a participant that was not asked, or a duplicate reply"
    if round_ != rnd:
        return f"reply for round {round_}, expected round {rnd}"
    return None


def _refusal(
    res: FitRes, expected: set[ClientId], rnd: int, dim: int, update: ClientUpdate
) -> str | None:
    """Why a fit reply cannot be used, or None if it can."""
    if (why := _stranger(res.client_id, res.round, expected, rnd)) is not None:
        return why
    if res.update.shape != (dim,) or res.update.dtype != np.float32:
        got = f"shape {res.update.shape} dtype {res.update.dtype}"
        return f"update of {got}, expected shape ({dim},) dtype float32"
    if not np.all(np.isfinite(res.update)):
        return "update contains NaN or Inf"
    if res.num_examples < 0 or not np.isfinite(res.train_loss):
        return "negative num_examples or non-finite train_loss"
    return update.refuse(res, dim)


def accept_fit_replies(
    outcomes: Sequence[Outcome],
    expected: set[ClientId],
    rnd: int,
    dim: int,
    update: ClientUpdate,
) -> tuple[list[FitRes], list[Failure]]:
    """Split outcomes into usable replies and failures; bad replies become failures."""
    replies: list[FitRes] = []
    failures: list[Failure] = []
    pending = set(expected)
    for o in outcomes:
        if isinstance(o, Failure):
            failures.append(o)
        elif not isinstance(o, FitRes):
            failures.append(Failure(o.client_id, rnd, Stage.FIT, "not a fit reply"))
        elif (why := _refusal(o, pending, rnd, dim, update)) is not None:
            failures.append(Failure(o.client_id, rnd, Stage.FIT, f"refused: {why}"))
        else:
            pending.discard(o.client_id)
            replies.append(o)
    return replies, failures


def accept_evaluate_replies(
    outcomes: Sequence[Outcome], expected: set[ClientId], rnd: int
) -> list[EvaluateRes]:
    """Evaluation replies that count: asked for, this round, once each, finite, non-empty."""
    pending, accepted = set(expected), []
    for o in outcomes:
        if not isinstance(o, EvaluateRes) or _stranger(o.client_id, o.round, pending, rnd):
            continue
        pending.discard(o.client_id)
        if o.num_examples > 0 and np.isfinite(o.loss) and 0 <= o.accuracy <= 1:
            accepted.append(o)
    return accepted


def evaluate_round(
    params: Params, clients: Sequence[ClientId], run: RunInfo, rnd: int
) -> Generator[Exchange, Sequence[Outcome], Evaluation | None]:
    """Federated evaluation on participants' local test splits (example-weighted)."""
    ins = EvaluateIns(run.run_id, rnd, params)
    outcomes = yield Exchange(Stage.EVALUATE, tuple((cid, ins) for cid in clients))
    res = accept_evaluate_replies(outcomes, set(clients), rnd)
    if not res:
        return None
    n = np.array([r.num_examples for r in res], np.float64)
    loss = float(n @ np.array([r.loss for r in res]) / n.sum())
    acc = float(n @ np.array([r.accuracy for r in res]) / n.sum())
    return Evaluation(loss=loss, accuracy=acc, num_examples=int(n.sum()))
