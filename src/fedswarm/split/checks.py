"""What the coordinator refuses from a participant (peers are untrusted): pure checks of
each reply against what was asked, returning a refusal code and reason, or None."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedswarm.messages import Refusal
from fedswarm.split.messages import HeadRes, Start, StepRes

__all__ = ["head_refusal", "step_refusal"]

Why = tuple[Refusal, str] | None


def step_refusal(res: StepRes, start: Start) -> Why:
    if res.final is not None:
        return _final_refusal(res, start)
    acts, labels = res.activations, res.labels
    if not 1 <= len(acts) <= start.batches_per_exchange:
        return Refusal.MALFORMED, f"{len(acts)} batches, at most {start.batches_per_exchange}"
    if len(labels) != (len(acts) if start.send_labels else 0):
        return Refusal.MALFORMED, f"{len(labels)} label arrays for {len(acts)} batches"
    if any(a.ndim < 2 or len(a) == 0 for a in acts):
        return Refusal.MALFORMED, "activations must be (batch, ...) with a non-empty batch"
    # labels is empty (U-shaped) or one per batch, as checked above
    if any(
        y.shape != (len(a),) or (len(y) and y.min() < 0) for a, y in zip(acts, labels, strict=False)
    ):
        return Refusal.MALFORMED, "labels must be one non-negative class id per example"
    if not all(np.isfinite(a).all() for a in acts):
        return Refusal.NON_FINITE, "activations contain NaN or Inf"
    return None


def _final_refusal(res: StepRes, start: Start) -> Why:
    part = res.final
    assert part is not None
    if res.activations or res.labels:
        return Refusal.MALFORMED, "a final reply carries no activations"
    if part.params.spec != start.part.params.spec:
        return Refusal.MALFORMED, "the returned part does not have the part's layout"
    if not np.isfinite(part.params.flat).all():
        return Refusal.NON_FINITE, "the returned part contains NaN or Inf"
    if not all(np.isfinite(v).all() for v in part.optimizer.values()):
        return Refusal.NON_FINITE, "the returned optimiser state contains NaN or Inf"
    return None


def head_refusal(res: HeadRes, outputs: Sequence[np.ndarray]) -> Why:
    if [g.shape for g in res.grads] != [o.shape for o in outputs]:
        return Refusal.MALFORMED, "gradients do not have the trunk outputs' shapes"
    if res.examples != sum(len(o) for o in outputs) or not 0 <= res.correct <= res.examples:
        return Refusal.MALFORMED, "example or correct counts do not match the batches"
    if not (np.isfinite(res.loss) and all(np.isfinite(g).all() for g in res.grads)):
        return Refusal.NON_FINITE, "loss or gradients contain NaN or Inf"
    return None
