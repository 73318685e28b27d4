"""SCAFFOLD (Karimireddy et al. 2020): control variates correct client drift.

Both halves live here. The server keeps a control variate ``c`` and sends it; each
participant keeps its own ``c_i`` in its memory, trains with gradients ``g + c - c_i``,
then updates ``c_i`` with the paper's option II (eq. 4):

    c_i+ = c_i - c + (x - y_i) / (K * lr)

where ``x - y_i`` is minus its model update and ``K`` its number of local steps. It sends
back ``delta_c_i = c_i+ - c_i``; the server sets ``c += |S|/N * mean(delta_c_i)``. The
server's model step ``x += lr_g * mean(delta_y)`` is the server optimiser's job
(``ServerSGD(lr=lr_g)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.algorithms.base import Slots
from fedswarm.messages import ClientMemory, ClientStep, FitRes, ReplyExtra
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining

__all__ = ["Scaffold", "ScaffoldExtra", "ScaffoldStep"]

CLIENT_CONTROL = "scaffold.control"


@dataclass(frozen=True, eq=False)
class ScaffoldExtra(ReplyExtra):
    control_delta: np.ndarray  # flat float32: c_i+ - c_i


@dataclass(frozen=True, eq=False)
class ScaffoldStep:
    """Client half: correct gradients by ``c - c_i`` and update ``c_i``."""

    control: np.ndarray  # the server's c, flat float32

    def _client_control(self, memory: ClientMemory) -> np.ndarray:
        return memory.get(CLIENT_CONTROL, np.zeros_like(self.control))

    def correction(self, memory: ClientMemory, dim: int) -> GradientCorrection:
        return GradientCorrection(shift=self.control - self._client_control(memory))

    def finish(
        self, memory: ClientMemory, update: np.ndarray, fit: LocalFit, training: LocalTraining
    ) -> tuple[ReplyExtra | None, ClientMemory]:
        c_i = self._client_control(memory)
        if fit.num_steps == 0:  # nothing trained: nothing learnt about the drift
            return ScaffoldExtra(np.zeros_like(c_i)), memory
        scale = np.float32(1.0 / (fit.num_steps * training.lr))
        new_c_i = c_i - self.control - update * scale
        return ScaffoldExtra(new_c_i - c_i), {**memory, CLIENT_CONTROL: new_c_i}


@dataclass(frozen=True)
class Scaffold:
    """Server half: keeps ``c`` and folds in the participants' control deltas."""

    def init(self, dim: int) -> Slots:
        return {"control": _read_only(np.zeros(dim, np.float32))}

    def unsupported(self, training: LocalTraining) -> str | None:
        if training.is_plain_sgd:
            return None
        return (
            "SCAFFOLD's control-variate update (option II) assumes plain local SGD: set the "
            "client optimizer to sgd with momentum 0"
        )

    def instruction(self, slots: Slots) -> ClientStep:
        return ScaffoldStep(slots["control"])

    def refuse(self, reply: FitRes, dim: int) -> str | None:
        if not isinstance(reply.extra, ScaffoldExtra):
            return "no SCAFFOLD control delta (is the participant running another algorithm?)"
        delta = reply.extra.control_delta
        if delta.shape != (dim,) or delta.dtype != np.float32:
            return f"control delta of shape {delta.shape} dtype {delta.dtype}, expected ({dim},)"
        if not np.all(np.isfinite(delta)):
            return "control delta contains NaN or Inf"
        return None

    def absorb(self, slots: Slots, replies: Sequence[FitRes], num_clients: int) -> Slots:
        """``c += |S|/N * mean(delta_c_i)``; N is the federation size seen this round."""
        deltas = []
        for r in replies:
            if (why := self.refuse(r, slots["control"].shape[0])) is not None:
                raise ValueError(f"round {r.round}: client {r.client_id}: {why}")
            assert isinstance(r.extra, ScaffoldExtra)
            deltas.append(r.extra.control_delta)
        mean = np.mean(np.stack(deltas).astype(np.float64), axis=0)
        step = (len(replies) / num_clients) * mean
        return {"control": _read_only((slots["control"] + step).astype(np.float32))}


def _read_only(a: np.ndarray) -> np.ndarray:
    """Server state is shared by reference with in-process participants: lock it."""
    a.flags.writeable = False
    return a
