"""Simulation engine: backends that run many virtual participants on one or many machines."""

from fedswarm.simulation.backends import (
    Backend,
    Job,
    JobResult,
    ProcessBackend,
    SequentialBackend,
    VectorizedBackend,
)
from fedswarm.simulation.ray_backend import RayBackend

__all__ = [
    "Backend",
    "Job",
    "JobResult",
    "ProcessBackend",
    "RayBackend",
    "SequentialBackend",
    "VectorizedBackend",
]
