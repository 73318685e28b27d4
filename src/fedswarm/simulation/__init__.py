"""Simulation engine: the in-memory transport and the backends that run many virtual
participants on one or many machines."""

from fedswarm.simulation.backends import (
    Backend,
    Job,
    JobResult,
    SequentialBackend,
    VectorizedBackend,
)
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.simulation.process import ProcessBackend
from fedswarm.simulation.ray_backend import RayBackend

__all__ = [
    "Backend",
    "InMemoryTransport",
    "Job",
    "JobResult",
    "ProcessBackend",
    "RayBackend",
    "SequentialBackend",
    "VectorizedBackend",
]
