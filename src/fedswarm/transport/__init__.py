"""Transports: how instructions reach participants and replies come back."""

from fedswarm.transport.base import ClientError, Request, Transport
from fedswarm.transport.memory import InMemoryTransport

__all__ = ["ClientError", "InMemoryTransport", "Request", "Transport"]
