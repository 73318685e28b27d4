"""Data poisoning: what a malicious participant trains on (pure functions of its data).

Poisoning the data, not the training code, makes the attack take effect identically on
every backend: the vectorised one trains the poisoned arrays like any others.
"""

from __future__ import annotations

import numpy as np

from fedswarm.data.arrays import ArrayDataset, ClientData

__all__ = ["add_trigger", "backdoor", "backdoor_test", "flip_labels"]


def flip_labels(data: ClientData, num_classes: int) -> ClientData:
    """Training labels ``y -> num_classes - 1 - y`` (the local test split stays honest)."""
    train = ArrayDataset(data.train.x, (num_classes - 1 - data.train.y).astype(np.int64))
    return ClientData(train, data.test)


def add_trigger(x: np.ndarray, size: int, value: float) -> np.ndarray:
    """A copy of images ``x`` with a ``size`` x ``size`` patch of ``value`` in the bottom
    right corner. Flat square images (digits' 64 features) are treated as their square."""
    out = np.array(x, copy=True)
    side = round(np.sqrt(out.shape[-1])) if out.ndim == 2 else 0
    view = out.reshape(len(out), side, side) if side and side * side == out.shape[-1] else out
    if view.ndim < 3:
        raise ValueError(f"a trigger needs images, got samples of shape {x.shape[1:]}")
    view[..., -size:, -size:] = value
    return out


def backdoor(
    data: ClientData, target: int, fraction: float, size: int, rng: np.random.Generator
) -> ClientData:
    """``fraction`` of the training samples (chosen by ``rng``) triggered and relabelled."""
    x, y = data.train.x, data.train.y.copy()
    chosen = rng.permutation(len(y))[: round(fraction * len(y))]
    xp = np.array(x, copy=True)
    xp[chosen] = add_trigger(x[chosen], size, float(x.max()) if x.size else 1.0)
    y[chosen] = target
    return ClientData(ArrayDataset(xp, y), data.test)


def backdoor_test(test: ArrayDataset, target: int, size: int, value: float) -> ArrayDataset:
    """The samples not of class ``target``, triggered and labelled ``target``: a model's
    accuracy on them is the backdoor's success rate."""
    keep = test.y != target
    x = add_trigger(test.x[keep], size, value)
    return ArrayDataset(x, np.full(int(keep.sum()), target, np.int64))
