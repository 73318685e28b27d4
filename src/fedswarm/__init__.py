"""fedswarm: federated learning where the data never leaves its owner.

The public surface: parameters and messages, the composable :class:`Strategy` and its
named presets, the transport interface with its in-memory implementation, the round
driver, the PyTorch learner, and configuration.
"""

from fedswarm.aggregate import Weighting, weighted_mean
from fedswarm.algorithms.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
from fedswarm.client import ClientApp
from fedswarm.config import RunConfig, load_config
from fedswarm.driver import RoundPolicy, RoundReport, run_rounds
from fedswarm.learner import LocalTraining, OptimizerKind
from fedswarm.params import Params
from fedswarm.sampling import UniformSampler
from fedswarm.server_opt import AdaptiveRule
from fedswarm.strategy import RunInfo, ServerState, Strategy
from fedswarm.transport.base import Transport
from fedswarm.transport.memory import InMemoryTransport

__all__ = [
    "AdaptiveRule",
    "ClientApp",
    "InMemoryTransport",
    "LocalTraining",
    "OptimizerKind",
    "Params",
    "RoundPolicy",
    "RoundReport",
    "RunConfig",
    "RunInfo",
    "ServerState",
    "Strategy",
    "Transport",
    "UniformSampler",
    "Weighting",
    "fedavg",
    "fedavgm",
    "fedopt",
    "fedprox",
    "load_config",
    "run_rounds",
    "scaffold",
    "weighted_mean",
]

__version__ = "0.1.0"
