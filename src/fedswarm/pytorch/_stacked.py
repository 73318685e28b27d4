"""Optimiser maths on stacked clients: every row of a ``(K, D)`` matrix is one client.

The update rules are ``torch.optim.SGD``'s and ``Adam``'s single-tensor ones, and the
gradient corrections are :class:`~fedswarm.pytorch.learner.TorchLearner`'s, so that a
vectorised client follows the sequential one up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from fedswarm.training import GradientCorrection, LocalTraining, OptimizerKind

__all__ = ["OptState", "corrector", "gated", "init_state", "optimizer_step"]

OptState = tuple[torch.Tensor, ...]
_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


def gated(
    active: torch.Tensor,
    full: bool,
    trained: torch.Tensor | None,
    new: tuple[torch.Tensor, ...],
    old: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, OptState]:
    """The new (K, D) parameters and optimiser state where a client stepped and an entry is
    trained, the old ones elsewhere: frozen clients and entries stay bit-identical.
    ``full``: every client stepped (``active.all()``, known without reading the device)."""
    if trained is None and full:
        return new[0], new[1:]
    # A 0/1 factor per client (K, 1), and per entry (K, D) if some are not trained.
    gate = active[:, None] if trained is None else active[:, None] & trained
    w, *state = (torch.where(gate, n, o) for n, o in zip(new, old, strict=True))
    return w, tuple(state)


def corrector(
    start: torch.Tensor, corrections: Sequence[GradientCorrection]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``g + mu_k * (w - w_global) + shift_k`` on (K, D) matrices, as TorchLearner's order;
    ``mu`` (K, 1) and the shifts (K, D) on ``start``'s device."""
    device = start.device
    mu = torch.tensor([c.mu for c in corrections], dtype=torch.float32, device=device)[:, None]
    any_mu = any(c.mu for c in corrections)
    shift = None
    if any(c.shift is not None for c in corrections):
        zero = np.zeros(start.shape[-1], np.float32)
        rows = [zero if c.shift is None else np.asarray(c.shift, np.float32) for c in corrections]
        shift = torch.from_numpy(np.stack(rows)).to(device)  # (K, D), in one copy

    def correct(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if any_mu:
            g = g + mu * (w - start)
        return g if shift is None else g + shift

    return correct


def init_state(training: LocalTraining, w: torch.Tensor) -> OptState:
    if training.optimizer is OptimizerKind.ADAM:
        return torch.zeros_like(w), torch.zeros_like(w)  # exp_avg, exp_avg_sq
    return (torch.zeros_like(w),) if training.momentum else ()  # momentum buffer


def optimizer_step(
    w: torch.Tensor, g: torch.Tensor, state: OptState, t: int, training: LocalTraining
) -> tuple[torch.Tensor, OptState]:
    """``torch.optim.SGD``/``Adam`` (single-tensor) maths on (K, D) matrices; ``t`` from 1.

    Every client active at global step ``t`` is at its own step ``t`` (steps run from 1
    without gaps), so Adam's bias corrections are the same scalars for all clients.
    """
    if training.weight_decay:
        g = g.add(w, alpha=training.weight_decay)
    if training.optimizer is OptimizerKind.ADAM:
        (b1, b2), (m, v) = _ADAM_BETAS, state
        m = m.lerp(g, 1 - b1)
        v = v.mul(b2).addcmul(g, g, value=1 - b2)
        denom = (v.sqrt() / (1 - b2**t) ** 0.5).add(_ADAM_EPS)
        return w.addcdiv(m, denom, value=-training.lr / (1 - b1**t)), (m, v)
    if training.momentum:
        # A zero buffer makes the first step buf = g, as torch's clone-on-first-step does.
        (buf,) = state
        g = buf.mul(training.momentum).add(g)
        state = (g,)
    return w.add(g, alpha=-training.lr), state
