"""Split learning: vanilla, U-shaped and SplitFed (v1, v2), both halves of each.

The model is cut (:mod:`~fedswarm.split.cut`); participants train the bottom (and, U-shaped,
the head) and exchange only cut-layer activations and gradients with the coordinator,
which trains the trunk. The coordinator's rounds are generators
(:mod:`~fedswarm.split.coordinator`), the participant's half handlers
(:mod:`~fedswarm.split.participant`); :class:`SplitProtocol` is the round loop.
"""

from fedswarm.split.cut import CutError, Cutter, Parts, SplitPlan, chain_layers, cut_model
from fedswarm.split.driver import SplitMode, SplitProtocol, SplitState
from fedswarm.split.messages import CODEC, KINDS, Protection
from fedswarm.split.participant import split_handlers

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
