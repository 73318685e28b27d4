"""fedswarm: federated learning where the data never leaves its owner.

The public surface: parameters and messages, the composable :class:`Strategy` and its
named presets, the transport interface with its in-memory implementation, the round
driver, the PyTorch learner, and configuration.

Names load lazily, so ``import fedswarm.messages`` (a participant written against the wire
types, a coordinator's protocol) loads neither torch nor scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedswarm._lazy import lazy_getattr

if TYPE_CHECKING:
    from fedswarm.aggregation import WeightedMean, Weighting, weighted_mean
    from fedswarm.client import ClientApp
    from fedswarm.driver import RoundPolicy, run_rounds
    from fedswarm.params import Params
    from fedswarm.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
    from fedswarm.reports import RoundReport
    from fedswarm.run.config import RunConfig, load_config
    from fedswarm.sampling import UniformSampler
    from fedswarm.server_opt import AdaptiveRule
    from fedswarm.simulation.memory import InMemoryTransport
    from fedswarm.strategy import FitStrategy, RunInfo, ServerState, Strategy
    from fedswarm.training import LocalTraining, OptimizerKind
    from fedswarm.transport.base import Transport

_WHERE = {
    "AdaptiveRule": "fedswarm.server_opt",
    "ClientApp": "fedswarm.client",
    "FitStrategy": "fedswarm.strategy",
    "InMemoryTransport": "fedswarm.simulation.memory",
    "LocalTraining": "fedswarm.training",
    "OptimizerKind": "fedswarm.training",
    "Params": "fedswarm.params",
    "RoundPolicy": "fedswarm.driver",
    "RoundReport": "fedswarm.reports",
    "RunConfig": "fedswarm.run.config",
    "RunInfo": "fedswarm.strategy",
    "ServerState": "fedswarm.strategy",
    "Strategy": "fedswarm.strategy",
    "Transport": "fedswarm.transport.base",
    "UniformSampler": "fedswarm.sampling",
    "WeightedMean": "fedswarm.aggregation",
    "Weighting": "fedswarm.aggregation",
    "fedavg": "fedswarm.presets",
    "fedavgm": "fedswarm.presets",
    "fedopt": "fedswarm.presets",
    "fedprox": "fedswarm.presets",
    "load_config": "fedswarm.run.config",
    "run_rounds": "fedswarm.driver",
    "scaffold": "fedswarm.presets",
    "weighted_mean": "fedswarm.aggregation",
}

__all__ = [
    "AdaptiveRule",
    "ClientApp",
    "FitStrategy",
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
    "WeightedMean",
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


__getattr__ = lazy_getattr("fedswarm", _WHERE, globals())


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
