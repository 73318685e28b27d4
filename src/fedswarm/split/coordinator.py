"""The coordinator's half of split learning: the trunk, and the rounds of every mode.

Each round is a generator that yields :class:`~fedswarm.rounds.Exchange`s and receives
their outcomes (``driver.pump`` moves them); it trains the trunk itself, here, between
exchanges. :func:`train_group` runs one epoch of a group of participants in parallel
against the trunk(s) ``server_for`` gives each; the modes differ only in who is in a group
and whose trunk serves whom:

- vanilla (Gupta and Raskar 2018): groups of one, in turn, one trunk; each participant
  starts from the part the previous one handed back (relayed by the coordinator);
- U-shaped: the same with the head and labels home (an extra ``split.head`` exchange);
- SplitFed v1 (Thapa et al. 2022): one group of all; a trunk copy per participant; parts
  and trunk copies averaged by examples;
- SplitFed v2: one group, one trunk serving the participants in client-id order.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from fedswarm.aggregation.mean import weighted_mean
from fedswarm.messages import ClientId, Failure, Outcome, Refusal
from fedswarm.rounds import Exchange
from fedswarm.split.checks import head_refusal, step_refusal
from fedswarm.split.cut import SplitPlan
from fedswarm.split.messages import HEAD, STEP, HeadIns, HeadRes, Start, StepIns, StepRes
from fedswarm.split.parts import PartState, Trainable, delayed_steps
from fedswarm.training import LocalTraining

__all__ = ["EpochResult", "Trunk", "splitfed_epoch", "train_group", "turns_epoch"]

Protocol = Generator[Exchange, Sequence[Outcome], "EpochResult"]
T = TypeVar("T")


class Trunk:
    """The server's part for some participants: trains on their activations."""

    def __init__(self, plan: SplitPlan, training: LocalTraining, state: PartState) -> None:
        self.part = Trainable(plan.parts().trunk, training, state)
        self._in_flight: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    def train(self, res: StepRes) -> tuple[list[np.ndarray], float, int]:
        """Vanilla: loss here, one step per batch; the activations' gradients, the summed
        loss and the correct predictions."""
        grads, loss_sum, correct = [], 0.0, 0
        for acts, y in zip(res.activations, res.labels, strict=True):
            x = torch.from_numpy(np.array(acts, np.float32)).requires_grad_()
            labels = torch.from_numpy(np.array(y, np.int64))
            logits = self.part.module(x)
            loss = F.cross_entropy(logits, labels)
            loss.backward()  # type: ignore[no-untyped-call]
            self.part.step()
            assert x.grad is not None
            grads.append(x.grad.numpy())
            loss_sum += float(loss.detach()) * len(labels)
            correct += int((logits.argmax(-1) == labels).sum())
        return grads, loss_sum, correct

    def forward(self, res: StepRes) -> list[np.ndarray]:
        """U-shaped: the trunk's outputs, their graphs kept for :meth:`backward`."""
        xs = [torch.from_numpy(np.array(a, np.float32)).requires_grad_() for a in res.activations]
        outs = [self.part.module(x) for x in xs]
        self._in_flight = (xs, outs)
        return [o.detach().numpy().copy() for o in outs]

    def backward(self, head: HeadRes) -> list[np.ndarray]:
        xs, outs = self._in_flight
        grads = [torch.from_numpy(np.array(g, np.float32)) for g in head.grads]
        back = delayed_steps(self.part, outs, grads, list(xs))
        self._in_flight = ([], [])
        return [
            g.numpy() if g is not None else np.zeros_like(x.detach().numpy())
            for g, x in zip(back, xs, strict=True)
        ]


@dataclass
class EpochResult:
    """What came of one epoch (of one group, or of a whole round)."""

    finals: dict[ClientId, PartState] = field(default_factory=dict)
    examples: dict[ClientId, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    loss_sum: float = 0.0
    correct: int = 0
    exchanges: int = 0

    def add(self, other: EpochResult) -> None:
        self.finals |= other.finals
        for cid, n in other.examples.items():
            self.examples[cid] = self.examples.get(cid, 0) + n
        self.failures += other.failures
        self.loss_sum += other.loss_sum
        self.correct += other.correct
        self.exchanges += other.exchanges


def _accept(
    outcomes: Sequence[Outcome], kind: type, result: EpochResult, round_: int
) -> dict[ClientId, object]:
    replies = {}
    for o in outcomes:
        if isinstance(o, Failure):
            result.failures.append(o)
        elif not isinstance(o, kind) or o.round != round_:
            why = f"a {type(o).__name__} of round {o.round} is not a {kind.__name__}"
            stage = STEP if kind is StepRes else HEAD
            result.failures.append(
                Failure.refused(o.client_id, round_, stage, Refusal.WRONG_KIND, why)
            )
        else:
            replies[o.client_id] = o
    return dict(sorted(replies.items()))


def train_group(
    run_id: str,
    round_: int,
    starts: Mapping[ClientId, Start],
    server_for: Callable[[ClientId], Trunk],
    u_shaped: bool,
) -> Protocol:
    """One epoch of ``starts``' participants in parallel; who fails drops out."""
    result = EpochResult()
    pending = {cid: StepIns(run_id, round_, start, ()) for cid, start in starts.items()}
    while pending:
        outcomes = yield Exchange(STEP, tuple(pending.items()))
        result.exchanges += 1
        active: dict[ClientId, StepRes] = {}
        for cid, r in _accept(outcomes, StepRes, result, round_).items():
            assert isinstance(r, StepRes)
            if (why := step_refusal(r, starts[cid])) is not None:
                result.failures.append(Failure.refused(cid, round_, STEP, *why))
            elif r.final is not None:
                result.finals[cid] = r.final
            else:
                active[cid] = r
                result.examples[cid] = result.examples.get(cid, 0) + sum(
                    len(a) for a in r.activations
                )
        grads = yield from _server_pass(run_id, round_, active, server_for, u_shaped, result)
        pending = {cid: StepIns(run_id, round_, None, tuple(g)) for cid, g in grads.items()}
    return result


def _server_pass(
    run_id: str,
    round_: int,
    active: Mapping[ClientId, StepRes],
    server_for: Callable[[ClientId], Trunk],
    u_shaped: bool,
    result: EpochResult,
) -> Generator[Exchange, Sequence[Outcome], dict[ClientId, list[np.ndarray]]]:
    """The trunk's work on one group of batches; the gradients to send back. Activations
    the trunk cannot use (wrong width, class ids out of range) refuse their sender."""
    grads: dict[ClientId, list[np.ndarray]] = {}
    if not u_shaped:
        for cid, r in active.items():  # in client-id order: SplitFed v2's sequence
            trained = _guarded(server_for(cid).train, r, round_, result)
            if trained is not None:
                grads[cid] = trained[0]
                result.loss_sum += trained[1]
                result.correct += trained[2]
        return grads
    outs = {}
    for cid, r in active.items():
        if (out := _guarded(server_for(cid).forward, r, round_, result)) is not None:
            outs[cid] = out
    if not outs:
        return grads
    ins = tuple((c, HeadIns(run_id, round_, tuple(o))) for c, o in outs.items())
    outcomes = yield Exchange(HEAD, ins)
    result.exchanges += 1
    for cid, h in _accept(outcomes, HeadRes, result, round_).items():
        assert isinstance(h, HeadRes)
        if (why := head_refusal(h, outs[cid])) is not None:
            result.failures.append(Failure.refused(cid, round_, HEAD, *why))
            continue
        grads[cid] = server_for(cid).backward(h)
        result.loss_sum += h.loss
        result.correct += h.correct
    return grads


def _guarded(
    compute: Callable[[StepRes], T], res: StepRes, round_: int, result: EpochResult
) -> T | None:
    cid = res.client_id
    try:
        return compute(res)
    except (RuntimeError, ValueError, IndexError) as err:  # what torch raises for bad input
        why = f"the trunk cannot use these activations: {err}"
        result.failures.append(Failure.refused(cid, round_, STEP, Refusal.MALFORMED, why))
        return None


def turns_epoch(
    plan: SplitPlan,
    client: PartState,
    trunk: PartState,
    order: Sequence[ClientId],
    starts: Callable[[ClientId, PartState], Start],
    run_id: str,
    round_: int,
) -> Generator[Exchange, Sequence[Outcome], tuple[EpochResult, PartState, PartState]]:
    """Vanilla and U-shaped: participants in turn, the part handed from one to the next.

    A participant that fails mid-turn leaves no trace: the next starts from the last
    completed hand-off, and the trunk goes back to where it was then.
    """
    training = starts(order[0], client).training if order else None
    total = EpochResult()
    for cid in order:
        assert training is not None
        server = Trunk(plan, training, trunk)
        result = yield from train_group(
            run_id, round_, {cid: starts(cid, client)}, _always(server), plan.u_shaped
        )
        if cid in result.finals:
            client, trunk = result.finals[cid], server.part.state()
            total.add(result)
        else:
            total.failures += result.failures
            total.exchanges += result.exchanges
    return total, client, trunk


def splitfed_epoch(
    plan: SplitPlan,
    client: PartState,
    trunk: PartState,
    clients: Sequence[ClientId],
    starts: Callable[[ClientId, PartState], Start],
    run_id: str,
    round_: int,
    one_trunk: bool,
) -> Generator[Exchange, Sequence[Outcome], tuple[EpochResult, PartState, PartState]]:
    """SplitFed: all in parallel, the parts (and v1's trunk copies) averaged by examples.

    Each round's participants start from fresh optimiser states, as FedAvg's local
    training does; v2's one trunk keeps its optimiser across rounds.
    """
    if not clients:  # nobody to train: the driver's quorum decides
        return EpochResult(), client, trunk
    fresh = PartState(client.params, {})
    training = starts(clients[0], fresh).training
    shared = Trunk(plan, training, trunk)
    copies = {cid: Trunk(plan, training, PartState(trunk.params, {})) for cid in clients}
    server_for: Callable[[ClientId], Trunk] = (
        (lambda c: shared) if one_trunk else copies.__getitem__
    )
    group = {cid: starts(cid, fresh) for cid in clients}
    result = yield from train_group(run_id, round_, group, server_for, plan.u_shaped)
    done = sorted(result.finals)
    if not done:
        return result, client, trunk
    weights = np.array([result.examples.get(c, 0) for c in done], np.float64)
    mean = _average([result.finals[c].params.flat for c in done], weights)
    client = PartState(client.params.replace(mean), {})
    if one_trunk:
        trunk = shared.part.state()
    else:
        flats = [copies[c].part.state().params.flat for c in done]
        trunk = PartState(trunk.params.replace(_average(flats, weights)), {})
    return result, client, trunk


def _always(trunk: Trunk) -> Callable[[ClientId], Trunk]:
    return lambda cid: trunk


def _average(flats: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    if flats[0].size == 0:
        return flats[0]
    return weighted_mean(np.stack(flats), weights).astype(np.float32)
