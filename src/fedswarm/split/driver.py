"""Split learning's round loop, and its state as the run store keeps it.

Between rounds the coordinator holds one participant part and one trunk (SplitFed averages
its copies at the end of every round), with their optimiser states: a :class:`SplitState`.
The run store checkpoints a :class:`~fedswarm.strategy.ServerState`, so the state is packed
into one: the whole model's parameters (bottom, trunk, head: the uncut model, which central
evaluation and the model registry use as they are), and the optimiser states as slots
``participant/...`` and ``trunk/...``. Resuming unpacks it; nothing else is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.client import Handler
from fedswarm.driver import RoundPolicy, pump
from fedswarm.kinds import MessageKinds
from fedswarm.messages import ClientId, Outcome
from fedswarm.params import Params
from fedswarm.reports import RoundReport
from fedswarm.rounds import Exchange, QuorumError
from fedswarm.seeding import client_seed, round_rng
from fedswarm.server_opt import OptimizerState
from fedswarm.split.coordinator import EpochResult, splitfed_epoch, turns_epoch
from fedswarm.split.cut import SplitPlan
from fedswarm.split.messages import KINDS, Protection, Start
from fedswarm.split.modes import SplitMode
from fedswarm.split.participant import split_handlers
from fedswarm.split.parts import PartState
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.training import Evaluation, LocalTraining
from fedswarm.transport.base import Transport

__all__ = ["SplitMode", "SplitProtocol", "SplitState"]


@dataclass(frozen=True, eq=False)
class SplitState:
    round: int  # epochs completed
    participant: PartState  # bottom (and head), as the last hand-off or average left it
    trunk: PartState


def pack(plan: SplitPlan, state: SplitState, like: Params) -> ServerState:
    whole = plan.join_params(state.participant.params, state.trunk.params, like)
    slots = {f"participant/{k}": v for k, v in state.participant.optimizer.items()}
    slots |= {f"trunk/{k}": v for k, v in state.trunk.optimizer.items()}
    return ServerState(state.round, whole, OptimizerState(0, slots))


def unpack(plan: SplitPlan, state: ServerState) -> SplitState:
    mine, trunk = plan.split_params(state.params)

    def slots(prefix: str) -> dict[str, np.ndarray]:
        return {
            k.removeprefix(prefix): v
            for k, v in state.optimizer.slots.items()
            if k.startswith(prefix)
        }

    return SplitState(
        state.round, PartState(mine, slots("participant/")), PartState(trunk, slots("trunk/"))
    )


_POLICY, _UNPROTECTED = RoundPolicy(), Protection()


@dataclass(frozen=True)
class SplitProtocol:
    """A configured split-learning run: the plan, the mode and the participants' training
    (``training.batch_size``, optimiser and learning rate serve both sides)."""

    plan: SplitPlan
    mode: SplitMode
    training: LocalTraining
    batches_per_exchange: int = 1
    protection: Protection = _UNPROTECTED

    @property
    def kinds(self) -> MessageKinds:
        return KINDS

    @property
    def handlers(self) -> Mapping[type, Handler]:
        return split_handlers(self.plan)

    def initial_state(self, params: Params) -> ServerState:
        """Round 0 from the whole model's initial parameters; fresh optimisers."""
        return ServerState(0, params, OptimizerState())

    def round(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> Generator[Exchange, Sequence[Outcome], tuple[ServerState, EpochResult]]:
        """One epoch: every available participant trains on all of its data once."""
        split, rnd = unpack(self.plan, state), state.round + 1
        clients = sorted(available)
        if self.mode.in_turns:  # a fresh order each round, from the run seed
            clients = [str(c) for c in round_rng(run.seed, rnd, "split.order").permutation(clients)]
        start = self._starts(run.seed, rnd)
        if self.mode.in_turns:
            epoch = turns_epoch(
                self.plan, split.participant, split.trunk, clients, start, run.run_id, rnd
            )
        else:
            one = self.mode is SplitMode.SPLITFED_V2
            epoch = splitfed_epoch(
                self.plan, split.participant, split.trunk, clients, start, run.run_id, rnd, one
            )
        result, participant, trunk = yield from epoch
        return pack(self.plan, SplitState(rnd, participant, trunk), state.params), result

    def _starts(self, seed: int, rnd: int) -> Callable[[ClientId, PartState], Start]:
        def start(cid: ClientId, part: PartState) -> Start:
            labels = self.mode is not SplitMode.U_SHAPED
            s = client_seed(seed, rnd, cid)  # batch order: public, as FitIns.seed is
            return Start(part, self.training, s, self.batches_per_exchange, labels, self.protection)

        return start

    def run_rounds(
        self,
        transport: Transport,
        state: ServerState,
        *,
        rounds: int,
        run: RunInfo,
        policy: RoundPolicy = _POLICY,
        central_eval: Callable[[Params], Evaluation] | None = None,
        on_round: Callable[[ServerState, RoundReport], None] = lambda s, r: None,
        on_stop: Callable[[ServerState, str], None] = lambda s, why: None,
    ) -> ServerState:
        """Rounds ``state.round + 1 .. rounds``, as :func:`fedswarm.driver.run_rounds`
        (``on_stop`` is never called: split rounds spend no privacy budget)."""
        while state.round < rounds:
            available = transport.available()
            begun = time.perf_counter()
            new, result = pump(self.round(state, available, run), transport, policy.timeout_s)
            if len(result.finals) < policy.min_replies:
                why = "; ".join(str(f) for f in result.failures[:5]) or "none"
                raise QuorumError(
                    f"round {new.round}: {len(result.finals)} participants completed an "
                    f"epoch, the quorum is {policy.min_replies}. Failures: {why}"
                )
            seconds = time.perf_counter() - begun
            state, old = new, state
            evaluate = state.round % policy.evaluate_every == 0 or state.round == rounds
            on_round(
                state, _report(state, old, result, seconds, central_eval if evaluate else None)
            )
        return state


def _report(
    state: ServerState,
    old: ServerState,
    result: EpochResult,
    seconds: float,
    central_eval: Callable[[Params], Evaluation] | None,
) -> RoundReport:
    examples = sum(result.examples.get(c, 0) for c in result.finals)
    return RoundReport(
        round=state.round,
        num_clients=len(result.finals),
        num_failures=len(result.failures),
        train_loss=result.loss_sum / max(examples, 1),
        update_norm=float(np.linalg.norm(state.params.flat - old.params.flat)),
        seconds=seconds,
        central=central_eval(state.params) if central_eval else None,
        replied=tuple(sorted(result.finals)),
        failures=tuple(result.failures),
        metrics={
            "split/train_accuracy": result.correct / max(examples, 1),
            "split/exchanges": float(result.exchanges),
        },
    )
