"""Federated algorithms: each module holds both halves (participant and server) of one.

The named compositions of the literature (FedAvg, FedProx, ...) are :mod:`fedswarm.presets`.
"""

from fedswarm.algorithms.base import ClientUpdate
from fedswarm.algorithms.fedprox import FedProx, ProxStep
from fedswarm.algorithms.local_sgd import LocalSGD, LocalSGDStep
from fedswarm.algorithms.scaffold import Scaffold, ScaffoldExtra, ScaffoldStep

__all__ = [
    "ClientUpdate",
    "FedProx",
    "LocalSGD",
    "LocalSGDStep",
    "ProxStep",
    "Scaffold",
    "ScaffoldExtra",
    "ScaffoldStep",
]
