"""The server half of a client-side algorithm, as a composable component.

A :class:`ClientUpdate` decides what participants are told to do locally (the
:class:`~fedswarm.messages.ClientStep` it puts into every fit instruction) and what the
server learns from their replies beyond the model update (e.g. SCAFFOLD's server control
variate). Its server-side state is a mapping of named vectors, so it is checkpointed like
any other tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from fedswarm.messages import ClientStep, FitRes
from fedswarm.training import LocalTraining

__all__ = ["ClientUpdate", "Slots"]

Slots = Mapping[str, np.ndarray]


class ClientUpdate(Protocol):
    def init(self, dim: int) -> Slots:
        """Server-side state of this component for a model of ``dim`` parameters."""
        ...

    def unsupported(self, training: LocalTraining) -> str | None:
        """Why this component cannot work with ``training``, or None if it can."""
        ...

    def instruction(self, slots: Slots) -> ClientStep:
        """The client step sent to every sampled participant this round."""
        ...

    def refuse(self, reply: FitRes, dim: int) -> str | None:
        """Why this reply's algorithm-specific part is unusable, or None if it is fine."""
        ...

    def absorb(self, slots: Slots, replies: Sequence[FitRes], num_clients: int) -> Slots:
        """New server-side state after a round; ``num_clients`` is the federation size."""
        ...
