"""Cutting a model into the parts split learning trains apart.

A model is a chain of layers when its forward pass applies its children in order: any
``nn.Sequential`` (nested ones are flattened), or a module whose named children are such a
chain (the built-in MLP and CNN). A cut names the last layer of the participant's bottom
part; for U-shaped learning a second cut, ``head_cut``, names the first layer of the head
the participant keeps. The server trains what lies between: the trunk.

The parts share no modules with the model they were cut from, and their parameters, in the
order bottom, trunk, head, are exactly the uncut model's state in state-dict order, so the
coordinator can keep (and the run store version) the whole model as one
:class:`~fedswarm.params.Params`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import nn

from fedswarm.params import Params
from fedswarm.pytorch.models import CNN, MLP, CharLSTM
from fedswarm.pytorch.params import module_params

__all__ = [
    "CutError",
    "Cutter",
    "LastStep",
    "Parts",
    "SplitPlan",
    "chain_layers",
    "cut_model",
    "default_cuts",
]


class CutError(ValueError):
    """A cut that does not fit the model; names the layers that do."""


class LastStep(nn.Module):
    """An LSTM as a chain layer: ``(batch, seq, embed) -> (batch, hidden)``, the last step's
    output (what :class:`~fedswarm.pytorch.models.CharLSTM` feeds its head)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        last: torch.Tensor = out[:, -1]
        return last


def chain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in forward order, named by their dotted path in the model."""
    if isinstance(model, CharLSTM):  # not a chain of children: its LSTM returns a tuple
        return [("embed", model.embed), ("lstm", LastStep(model.lstm)), ("head", model.head)]
    children = list(model.named_children())
    if not children:
        raise CutError(f"a {type(model).__name__} has no child layers to cut between")
    layers: list[tuple[str, nn.Module]] = []
    for name, child in children:
        if isinstance(child, nn.Sequential):
            layers += [(f"{name}.{n}", m) for n, m in chain_layers(child)]
        else:
            layers.append((name, child))
    return layers


@dataclass(frozen=True, eq=False)
class Parts:
    """A model in pieces, in forward order. ``head`` is None unless the cut is U-shaped."""

    bottom: nn.Module
    trunk: nn.Module
    head: nn.Module | None = None

    def participant(self) -> nn.ModuleDict:
        """What the participant trains (bottom, and head if any), as one module."""
        held = {"bottom": self.bottom} | ({"head": self.head} if self.head is not None else {})
        return nn.ModuleDict(held)

    def full(self) -> nn.Sequential:
        """The parts composed again (for evaluation)."""
        return nn.Sequential(self.bottom, self.trunk, *([self.head] if self.head else []))


def cut_model(model: nn.Module, cut: str, head_cut: str | None = None) -> Parts:
    """``model`` cut after layer ``cut`` (and before ``head_cut``); copies, not views."""
    layers = chain_layers(copy.deepcopy(model))
    names = [n for n, _ in layers]
    at = _index(names, cut, "cut") + 1
    end = len(layers) if head_cut is None else _index(names, head_cut, "head_cut")
    if end < at:
        raise CutError(f"head_cut {head_cut!r} comes before cut {cut!r}; layers: {names}")
    if at == len(layers):
        raise CutError(f"cut {cut!r} is the last layer: the server would have nothing to train")
    if end == at:
        raise CutError(f"cuts {cut!r} and {head_cut!r} leave the server no layers: {names}")
    if head_cut is not None and end == len(layers):
        raise CutError(f"head_cut {head_cut!r} leaves the participant no head")
    parts = Parts(
        nn.Sequential(*(m for _, m in layers[:at])),
        nn.Sequential(*(m for _, m in layers[at:end])),
        nn.Sequential(*(m for _, m in layers[end:])) if head_cut is not None else None,
    )
    _check_order(model, parts)
    return parts


def _index(names: list[str], name: str, what: str) -> int:
    if name not in names:
        raise CutError(f"{what} {name!r} is not a layer of the model; its layers: {names}")
    return names.index(name)


def _check_order(model: nn.Module, parts: Parts) -> None:
    """The parts' tensors must be the model's, in order: else the model has parameters
    outside its chain of layers, or children registered out of forward order."""
    whole = [tuple(t.shape) for t in model.state_dict().values()]
    pieces = [parts.bottom, parts.trunk, *([parts.head] if parts.head is not None else [])]
    cut = [tuple(t.shape) for p in pieces for t in p.state_dict().values()]
    if whole != cut:
        raise CutError(
            f"a {type(model).__name__} is not a chain of its children (its tensors do not "
            "follow its layers in order): give the parts yourself (SplitPlan(parts_fn))"
        )


def default_cuts(model: nn.Module, u_shaped: bool) -> tuple[str, str | None]:
    """After the first hidden block, and for U-shaped before the output layer."""
    if isinstance(model, CharLSTM):
        return "embed", "head" if u_shaped else None
    names = [n for n, _ in chain_layers(model)]
    if isinstance(model, MLP):
        first = names[2] if len(names) > 3 else names[0]  # Flatten, Linear, ReLU, ...
    elif isinstance(model, CNN):
        first = names[2]  # conv, ReLU, max-pool
    else:
        raise CutError(f"no default cut for a {type(model).__name__}: set split.cut")
    return first, names[-1] if u_shaped else None


@dataclass(frozen=True)
class Cutter:
    """A picklable constructor of the parts of ``model_fn()`` cut at ``cut``/``head_cut``."""

    model_fn: Callable[[], nn.Module]
    cut: str
    head_cut: str | None = None

    def __call__(self) -> Parts:
        return cut_model(self.model_fn(), self.cut, self.head_cut)


@dataclass(frozen=True)
class SplitPlan:
    """How both sides build their parts: a :class:`Cutter`, or the user's own constructor
    of :class:`Parts`. Picklable when ``parts_fn`` is, so a worker builds its parts itself."""

    parts_fn: Callable[[], Parts]

    @classmethod
    def cutting(cls, model_fn: Callable[[], nn.Module], cut: str, head: str | None) -> SplitPlan:
        return cls(Cutter(model_fn, cut, head))

    def parts(self) -> Parts:
        return self.parts_fn()

    @cached_property
    def _dims(self) -> tuple[int, int, bool]:
        parts = self.parts()
        return _dim(parts.bottom), _dim(parts.trunk), parts.head is not None

    @property
    def u_shaped(self) -> bool:
        return self._dims[2]

    def split_params(self, whole: Params) -> tuple[Params, Params]:
        """The whole model's parameters (bottom, trunk, head in order) as (participant
        part, trunk)."""
        parts = self.parts()
        nb, nt, _ = self._dims
        flat = whole.flat
        mine = np.concatenate([flat[:nb], flat[nb + nt :]])
        return _as(parts.participant(), mine), _as(parts.trunk, flat[nb : nb + nt])

    def join_params(self, participant: Params, trunk: Params, like: Params) -> Params:
        """Inverse of :meth:`split_params` (``like``: any params of the whole model)."""
        nb = self._dims[0]
        flat = participant.flat
        return like.replace(np.concatenate([flat[:nb], trunk.flat, flat[nb:]]))


def _dim(module: nn.Module) -> int:
    return sum(t.numel() for t in module.state_dict().values())


def _as(module: nn.Module, flat: np.ndarray) -> Params:
    return module_params(module).replace(np.ascontiguousarray(flat, np.float32))
