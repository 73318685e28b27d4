"""Gradient inversion (Geiping et al. 2020, "Inverting Gradients") as a measure of leakage.

An attacker holding the global model and one participant's update (one full-batch step of
local SGD, so the update is ``-lr`` times the gradient) searches for a batch whose gradient
points the same way: it minimises ``1 - cos(grad(x'), -update)`` plus a total-variation
prior over dummy images ``x'``, with the labels known (the paper's setting; for one image
they follow from the last layer's bias gradient anyway). Cosine matching ignores the
update's scale, so clipping alone does not stop it; noise does. Written here rather than
taken from a library because none in the environment offers it for an arbitrary flat
update of a fedswarm model; it is a measuring instrument for benchmarks and tests, not a
training component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call, grad

__all__ = ["InversionResult", "invert_update", "local_update", "psnr"]


def _loss_fn(model: nn.Module) -> Callable[..., torch.Tensor]:
    def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return loss


def local_update(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
    """One participant's flat update after one full-batch SGD step: ``-lr * grad``."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = grad(_loss_fn(model))(params, x, y)
    return torch.cat([(-lr * g[k]).reshape(-1) for k in params])


@dataclass(frozen=True)
class InversionResult:
    images: np.ndarray  # (batch, *image) reconstructions in [0, 1], matched to the originals
    psnr: np.ndarray  # (batch,) dB against the matched original


def invert_update(
    model: nn.Module,
    update: torch.Tensor,
    labels: torch.Tensor,
    shape: tuple[int, ...],
    *,
    steps: int = 400,
    tv: float = 1e-4,
    seed: int = 0,
) -> torch.Tensor:
    """Dummy images (``(batch, *shape)``, in [0, 1]) whose gradient matches ``update``."""
    params = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
    target = -update / update.norm()
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((len(labels), *shape), generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    loss_of = _loss_fn(model)
    for _ in range(steps):
        opt.zero_grad()
        g = torch.autograd.grad(
            loss_of(params, x, labels), list(params.values()), create_graph=True
        )
        flat = torch.cat([t.reshape(-1) for t in g])
        objective = 1 - torch.dot(flat, target) / (flat.norm() + 1e-12) + tv * _tv(x)
        objective.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


def _tv(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation over the last two (spatial) axes."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


def psnr(original: np.ndarray, reconstructed: np.ndarray) -> InversionResult:
    """Per-image PSNR (dB, peak 1) after pairing each original with its best reconstruction
    (the attack may return the batch in another order)."""
    a = original.reshape(len(original), -1)
    b = reconstructed.reshape(len(reconstructed), -1)
    mse = ((a[:, None, :] - b[None, :, :]) ** 2).mean(axis=2)
    rows, cols = linear_sum_assignment(mse)
    matched = reconstructed[cols[np.argsort(rows)]]
    best = mse[rows, cols][np.argsort(rows)]
    return InversionResult(matched, 10 * np.log10(1.0 / np.maximum(best, 1e-12)))
