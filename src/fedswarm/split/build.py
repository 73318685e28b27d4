"""A configured split-learning protocol: ``[split]`` and the model to cut."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fedswarm.split.config import SplitConfig
from fedswarm.split.cut import SplitPlan, default_cuts
from fedswarm.split.driver import SplitMode, SplitProtocol
from fedswarm.split.messages import Protection
from fedswarm.training import LocalTraining

__all__ = ["split_protocol"]


def split_protocol(
    cfg: SplitConfig, training: LocalTraining, model_fn: Callable[[], nn.Module]
) -> SplitProtocol:
    """The protocol ``cfg`` describes; cuts not given are the model's defaults."""
    u_shaped = cfg.mode is SplitMode.U_SHAPED
    cut, head = cfg.cut, cfg.head_cut
    if cut is None or (u_shaped and head is None):
        default_cut, default_head = default_cuts(model_fn(), u_shaped)
        cut, head = cut or default_cut, head or default_head
    plan = SplitPlan.cutting(model_fn, cut, head)
    plan.parts()  # a cut that does not fit fails here, naming the layers
    protection = Protection(cfg.clip, cfg.noise)
    return SplitProtocol(plan, cfg.mode, training, cfg.batches_per_exchange, protection)
