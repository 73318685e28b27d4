"""Split learning: vanilla, U-shaped and SplitFed (v1, v2), both halves of each.

The model is cut (:mod:`~fedswarm.split.cut`); participants train the bottom (and, U-shaped,
the head) and exchange only cut-layer activations and gradients with the coordinator,
which trains the trunk. The coordinator's rounds are generators
(:mod:`~fedswarm.split.coordinator`), the participant's half handlers
(:mod:`~fedswarm.split.participant`); :class:`SplitProtocol` is the round loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedswarm._lazy import lazy_getattr

if TYPE_CHECKING:
    from fedswarm.split.cut import CutError, Cutter, Parts, SplitPlan, chain_layers, cut_model
    from fedswarm.split.driver import SplitProtocol, SplitState
    from fedswarm.split.messages import CODEC, KINDS, Protection
    from fedswarm.split.modes import SplitMode
    from fedswarm.split.participant import split_handlers

_WHERE = {
    "CODEC": "fedswarm.split.messages",
    "CutError": "fedswarm.split.cut",
    "Cutter": "fedswarm.split.cut",
    "KINDS": "fedswarm.split.messages",
    "Parts": "fedswarm.split.cut",
    "Protection": "fedswarm.split.messages",
    "SplitMode": "fedswarm.split.modes",
    "SplitPlan": "fedswarm.split.cut",
    "SplitProtocol": "fedswarm.split.driver",
    "SplitState": "fedswarm.split.driver",
    "chain_layers": "fedswarm.split.cut",
    "cut_model": "fedswarm.split.cut",
    "split_handlers": "fedswarm.split.participant",
}

__all__ = [
    "CODEC",
    "KINDS",
    "CutError",
    "Cutter",
    "Parts",
    "Protection",
    "SplitMode",
    "SplitPlan",
    "SplitProtocol",
    "SplitState",
    "chain_layers",
    "cut_model",
    "split_handlers",
]

__getattr__ = lazy_getattr("fedswarm.split", _WHERE, globals())
