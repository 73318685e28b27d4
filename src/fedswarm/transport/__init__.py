"""Transports: how instructions reach participants and replies come back.

:mod:`.base` is the one interface; the in-memory transport of simulation is
:class:`fedswarm.simulation.memory.InMemoryTransport`, the network one is in :mod:`.grpc`.
"""

from fedswarm.transport.base import ClientError, Fold, Request, Transport

__all__ = ["ClientError", "Fold", "Request", "Transport"]
