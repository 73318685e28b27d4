"""The participant's half of split learning: handlers for ``split.step`` and ``split.head``.

A turn (one epoch over the participant's training data) lives in its
:class:`~fedswarm.client.Session`: the part's modules and optimiser, the batch order, and
the activations of the group in flight with their autograd graph, which the next
``split.step`` back-propagates. Nothing of it is pickled; the backends route a turn's
exchanges to the process that holds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fedswarm.client import BUILTIN_HANDLERS, ClientApp, Handler, Session
from fedswarm.messages import ClientMemory
from fedswarm.pytorch.learner import batch_indices
from fedswarm.split.cut import SplitPlan
from fedswarm.split.messages import HeadIns, HeadRes, Protection, Start, StepIns, StepRes
from fedswarm.split.parts import Trainable, delayed_steps

__all__ = ["SplitHead", "SplitStep", "protect", "split_handlers"]

_TURN = "split.turn"


def protect(acts: torch.Tensor, protection: Protection, rng: np.random.Generator) -> torch.Tensor:
    """Each example's activations clipped to L2 norm ``clip``, plus Gaussian noise.

    Differentiable in ``acts`` (the clip is part of the participant's forward pass; the
    noise, drawn from the participant's own secrets, is a constant added to it).
    """
    out = acts
    if protection.clip is not None:
        norms = acts.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (protection.clip / norms).clamp(max=1.0)
        out = acts * scale.view(-1, *([1] * (acts.dim() - 1)))
    if protection.noise:
        noise = rng.normal(0.0, protection.noise, size=tuple(out.shape)).astype(np.float32)
        out = out + torch.from_numpy(noise)
    return out


class _Turn:
    """One participant's turn: what the session holds between exchanges."""

    def __init__(self, plan: SplitPlan, app: ClientApp, start: Start, round_: int) -> None:
        self.start = start
        self.part = Trainable(plan.parts().participant(), start.training, start.part)
        data = app.data.train
        self.x, self.y = torch.from_numpy(data.x), torch.from_numpy(data.y)
        self.batches: Iterator[torch.Tensor] = batch_indices(len(data), start.training, start.seed)
        self.noise = app.secrets.generator(round_, "split.noise")
        self.outputs: list[torch.Tensor] = []  # the cut activations in flight, with graphs
        self.labels: list[torch.Tensor] = []

    def backward(self, grads: tuple[np.ndarray, ...]) -> None:
        if len(grads) != len(self.outputs):
            raise ValueError(f"{len(grads)} gradients for {len(self.outputs)} batches in flight")
        if grads:
            tensors = [torch.from_numpy(np.array(g, np.float32)) for g in grads]
            delayed_steps(self.part, self.outputs, tensors, [None] * len(tensors))
        self.outputs = []

    def forward(self) -> list[np.ndarray]:
        """The next group's (protected) cut activations; none once the epoch is done."""
        bottom = self.part.module.get_submodule("bottom")
        self.labels = []
        for _ in range(self.start.batches_per_exchange):
            idx = next(self.batches, None)
            if idx is None:
                break
            acts = protect(bottom(self.x[idx]), self.start.protection, self.noise)
            self.outputs.append(acts)
            self.labels.append(self.y[idx])
        return [a.detach().numpy().copy() for a in self.outputs]


@dataclass(frozen=True)
class SplitStep:
    """``split.step``: back-propagate the last group's gradients, forward the next group."""

    plan: SplitPlan

    def __call__(
        self, app: ClientApp, ins: StepIns, memory: ClientMemory, session: Session
    ) -> tuple[StepRes, ClientMemory]:
        if ins.start is not None:
            session.values[_TURN] = _Turn(self.plan, app, ins.start, ins.round)
        turn: _Turn | None = session.values.get(_TURN)
        if turn is None:
            raise RuntimeError(f"{app.client_id}: no split turn open in this process")
        turn.backward(ins.grads)
        acts = turn.forward()
        if not acts:  # the epoch is done: hand the trained part back, close the turn
            del session.values[_TURN]
            return StepRes(app.client_id, ins.round, (), (), turn.part.state()), memory
        labels = tuple(y.numpy() for y in turn.labels) if turn.start.send_labels else ()
        return StepRes(app.client_id, ins.round, tuple(acts), labels), memory


@dataclass(frozen=True)
class SplitHead:
    """``split.head`` (U-shaped): the head's loss on the trunk's outputs, a step of the head
    per batch, and the outputs' gradients back. Labels and logits never leave."""

    def __call__(
        self, app: ClientApp, ins: HeadIns, memory: ClientMemory, session: Session
    ) -> tuple[HeadRes, ClientMemory]:
        turn: _Turn | None = session.values.get(_TURN)
        if turn is None or len(ins.outputs) != len(turn.labels):
            raise RuntimeError(f"{app.client_id}: trunk outputs for no batch in flight")
        head = turn.part.module.get_submodule("head")
        grads, loss_sum, correct, examples = [], 0.0, 0, 0
        for out, y in zip(ins.outputs, turn.labels, strict=True):
            z = torch.from_numpy(np.array(out, np.float32)).requires_grad_()
            logits = head(z)
            loss = F.cross_entropy(logits, y)
            params = list(head.parameters())
            *param_grads, z_grad = torch.autograd.grad(loss, [*params, z])
            for p, g in zip(params, param_grads, strict=True):
                p.grad = g
            turn.part.step()  # only the head has gradients: only the head moves
            grads.append(z_grad.numpy())
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            examples += len(y)
        return HeadRes(app.client_id, ins.round, tuple(grads), loss_sum, correct, examples), memory


def split_handlers(plan: SplitPlan) -> dict[type, Handler]:
    """A participant's handlers for split learning (fit and evaluate stay)."""
    return {**BUILTIN_HANDLERS, StepIns: SplitStep(plan), HeadIns: SplitHead()}
