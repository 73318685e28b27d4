"""The named algorithms of the literature, as compositions of a :class:`Strategy`."""

from __future__ import annotations

from fedswarm.aggregation import Weighting
from fedswarm.algorithms.fedprox import FedProx
from fedswarm.algorithms.scaffold import Scaffold
from fedswarm.sampling import Sampler, UniformSampler
from fedswarm.server_opt import AdaptiveRule, ServerAdaptive, ServerSGD
from fedswarm.strategy import Strategy
from fedswarm.training import LocalTraining

__all__ = ["fedavg", "fedavgm", "fedopt", "fedprox", "scaffold"]


def fedavg(
    training: LocalTraining,
    sampler: Sampler | None = None,
    weighting: Weighting = Weighting.EXAMPLES,
) -> Strategy:
    """McMahan et al. 2017: example-weighted mean of client models."""
    return Strategy(training, sampler or UniformSampler(), weighting=weighting)


def fedavgm(
    training: LocalTraining,
    sampler: Sampler | None = None,
    server_lr: float = 1.0,
    momentum: float = 0.9,
) -> Strategy:
    """Hsu et al. 2019: FedAvg with server momentum."""
    return Strategy(
        training, sampler or UniformSampler(), server_optimizer=ServerSGD(server_lr, momentum)
    )


def fedprox(training: LocalTraining, mu: float, sampler: Sampler | None = None) -> Strategy:
    """Li et al. 2020: FedAvg whose clients add a proximal term ``mu/2 ||w - w_t||^2``."""
    return Strategy(training, sampler or UniformSampler(), client_update=FedProx(mu))


def fedopt(
    training: LocalTraining,
    rule: AdaptiveRule,
    sampler: Sampler | None = None,
    server_lr: float = 0.01,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> Strategy:
    """Reddi et al. 2021: FedAdam, FedYogi or FedAdagrad (by ``rule``)."""
    opt = ServerAdaptive(rule, lr=server_lr, beta1=beta1, beta2=beta2, tau=tau)
    return Strategy(training, sampler or UniformSampler(), server_optimizer=opt)


def scaffold(
    training: LocalTraining, sampler: Sampler | None = None, server_lr: float = 1.0
) -> Strategy:
    """Karimireddy et al. 2020: control variates against client drift (option II)."""
    return Strategy(
        training,
        sampler or UniformSampler(),
        client_update=Scaffold(),
        server_optimizer=ServerSGD(server_lr),
        weighting=Weighting.UNIFORM,
    )
