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

__all__ = ["ClientUpdate", "Slots"]

Slots = Mapping[str, np.ndarray]


class ClientUpdate(Protocol):
    def init(self, dim: int) -> Slots:
        """Server-side state of this component for a model of ``dim`` parameters."""
        ...

    def instruction(self, slots: Slots) -> ClientStep:
        """The client step sent to every sampled participant this round."""
        ...

    def absorb(self, slots: Slots, replies: Sequence[FitRes], num_clients: int) -> Slots:
        """New server-side state after a round; ``num_clients`` is the federation size."""
        ...
