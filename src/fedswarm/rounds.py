"""Round protocols: generators that yield message exchanges and never touch a network.

A protocol yields an :class:`Exchange` (instructions for some participants), receives
the outcomes, and finally returns its result. A driver moves the messages (see
:func:`fedswarm.driver.pump`). A plain fit round is a one-exchange protocol; multi-step
protocols (secure aggregation, split learning, swarm merge) are longer generators of the
same kind, so one driver and one transport serve them all.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fedswarm.aggregation import Accumulator, Weighting
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.messages import (
    ClientId,
    EvaluateIns,
    EvaluateRes,
    Failure,
    FitRes,
    Outcome,
    Refusal,
    Stage,
)
from fedswarm.params import Params
from fedswarm.reports import ClientFitStats
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState
from fedswarm.training import Evaluation
from fedswarm.transport.base import Fold, Request

__all__ = [
    "Exchange",
    "FitReplyCheck",
    "FitRoundResult",
    "QuorumError",
    "RoundProtocol",
    "accept_evaluate_replies",
    "evaluate_round",
    "fit_round",
]


@dataclass(frozen=True)
class Exchange:
    """Instructions for some participants.

    ``fold``, if set, is applied by the transport to each outcome once, as it arrives (one
    call at a time): a fit round checks the reply there and adds its update to a running
    mean, so the update need not be kept until the last participant has answered.
    """

    stage: Stage
    requests: tuple[Request, ...]
    fold: Fold | None = None


RoundProtocol = Generator[Exchange, Sequence[Outcome], "FitRoundResult"]


class QuorumError(RuntimeError):
    """Too few participants replied for the round to count."""


@dataclass(frozen=True)
class FitRoundResult:
    state: ServerState
    summary: FitSummary
    failures: tuple[Failure, ...]
    replied: tuple[ClientId, ...] = ()  # whose updates count, sorted (summary.scores' order)
    clients: Mapping[ClientId, ClientFitStats] = field(default_factory=dict)  # of ``replied``
    updates: np.ndarray | None = None  # (replied, dim), when the round kept them


def fit_round(
    strategy: FitStrategy,
    state: ServerState,
    available: Sequence[ClientId],
    run: RunInfo,
    min_replies: int = 1,
    keep_updates: bool = False,
) -> RoundProtocol:
    """Sample, instruct, collect, validate and aggregate one round."""
    requests = strategy.configure_fit(state, available, run)
    rnd = state.round + 1
    check = FitReplyCheck(
        expected={cid for cid, _ in requests},
        round=rnd,
        dim=state.params.dim,
        update=strategy.client_update,
        weighting=strategy.weighting,
        accumulator=strategy.accumulator(state.params.dim),
        keep_updates=keep_updates,
    )
    # Poisson sampling may ask nobody of those available: the round still happens (a private
    # round's noise is released and accounted), with no exchange and no quorum to meet.
    outcomes = (yield Exchange(Stage.FIT, tuple(requests), fold=check)) if requests else ()
    replies, failures = check.split(outcomes)
    if (requests or not available) and len(replies) < max(min_replies, 1):
        reasons = "; ".join(str(f) for f in failures[:5])
        raise QuorumError(
            f"round {rnd}: {len(replies)} of {len(requests)} participants replied, "
            f"the quorum is {max(min_replies, 1)}. Failures: {reasons or 'none'}"
        )
    summed = check.accumulator.summed() if check.accumulator is not None else None
    new_state, summary = strategy.aggregate_fit(
        state, replies, num_clients=len(available), run=run, summed=summed
    )
    replied = tuple(sorted(r.client_id for r in replies))
    stats = {cid: check.stats[cid] for cid in replied}
    kept = np.stack([check.kept[c] for c in replied]) if keep_updates and replied else None
    return FitRoundResult(new_state, summary, tuple(failures), replied, stats, kept)


_FOLDED = np.zeros(0, np.float32)
_FOLDED.flags.writeable = False


@dataclass(eq=False)
class FitReplyCheck:
    """Checks each fit outcome of one round as it arrives; a :data:`Fold`.

    A usable reply passes (with ``accumulator`` set, its update is added to the running sum and
    the reply passes without it); anything else becomes a :class:`Failure` saying why.
    :meth:`split` finishes the round's outcomes, checking any the transport did not fold.
    """

    expected: set[ClientId]
    round: int
    dim: int
    update: ClientUpdate
    weighting: Weighting = Weighting.EXAMPLES
    accumulator: Accumulator | None = None
    _accepted: set[ClientId] = field(default_factory=set)
    stats: dict[ClientId, ClientFitStats] = field(default_factory=dict)  # of the accepted
    keep_updates: bool = False  # keep each accepted update (in ``kept``) before folding it
    kept: dict[ClientId, np.ndarray] = field(default_factory=dict)
    _made: dict[int, FitRes | Failure] = field(default_factory=dict)  # by id: what it made

    def __call__(self, o: Outcome) -> FitRes | Failure:
        out = self._check(o)
        self._made[id(out)] = out  # holding it keeps the id unique
        return out

    def _check(self, o: Outcome) -> FitRes | Failure:
        if isinstance(o, Failure):
            return o
        if not isinstance(o, FitRes):
            why = f"a {type(o).__name__} is not a fit reply"
            return Failure.refused(o.client_id, self.round, Stage.FIT, Refusal.WRONG_KIND, why)
        pending = self.expected - self._accepted
        if (refusal := _refusal(o, pending, self.round, self.dim, self.update)) is not None:
            return Failure.refused(o.client_id, self.round, Stage.FIT, *refusal)
        if self.weighting is Weighting.EXAMPLES and o.num_examples == 0:
            none = "trained on no examples"
            return Failure.refused(o.client_id, o.round, Stage.FIT, Refusal.NO_EXAMPLES, none)
        self._accepted.add(o.client_id)
        norm = float(np.linalg.norm(o.update.astype(np.float64)))
        self.stats[o.client_id] = ClientFitStats(o.train_loss, norm, o.num_examples)
        if self.keep_updates:
            self.kept[o.client_id] = o.update
        if self.accumulator is None:
            return o
        weight = 1.0 if self.weighting is Weighting.UNIFORM else float(o.num_examples)
        self.accumulator.add(o.update, weight)
        return replace(o, update=_FOLDED)

    def split(self, outcomes: Sequence[Outcome]) -> tuple[list[FitRes], list[Failure]]:
        """The round's usable replies and its failures."""
        replies: list[FitRes] = []
        failures: list[Failure] = []
        for o in outcomes:
            done = self._made.get(id(o)) or self(o)
            if isinstance(done, FitRes):
                replies.append(done)
            else:
                failures.append(done)
        return replies, failures


def _stranger(
    client_id: ClientId, round_: int, pending: set[ClientId], rnd: int
) -> tuple[Refusal, str] | None:
    if client_id not in pending:
        why = "reply from a participant that was not asked, or a duplicate reply"
        return Refusal.NOT_ASKED, why
    if round_ != rnd:
        return Refusal.WRONG_ROUND, f"reply for round {round_}, expected round {rnd}"
    return None


def _refusal(
    res: FitRes, expected: set[ClientId], rnd: int, dim: int, update: ClientUpdate
) -> tuple[Refusal, str] | None:
    """Why a fit reply cannot be used (code and words), or None if it can."""
    if (why := _stranger(res.client_id, res.round, expected, rnd)) is not None:
        return why
    if res.update.shape != (dim,) or res.update.dtype != np.float32:
        got = f"shape {res.update.shape} dtype {res.update.dtype}"
        return Refusal.MALFORMED, f"update of {got}, expected shape ({dim},) dtype float32"
    if not np.all(np.isfinite(res.update)):
        return Refusal.NON_FINITE, "update contains NaN or Inf"
    if not np.isfinite(res.train_loss):
        return Refusal.NON_FINITE, "non-finite train_loss"
    if res.num_examples < 0:
        return Refusal.MALFORMED, "negative num_examples"
    if (algorithm := update.refuse(res, dim)) is not None:
        return Refusal.ALGORITHM, algorithm
    return None


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
