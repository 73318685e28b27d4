"""What ``[aggregator]`` and ``[attack]`` add to a built run: FLTrust's root update at the
coordinator, the malicious participants, and the colluding adversary (simulation only)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fedswarm.aggregation import ReferenceUpdate
from fedswarm.attacks import COLLUDING, ColludingAttack, malicious_clients
from fedswarm.data.arrays import FederatedDataset
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.run.aggregators import FLTrustOptions, RootUpdate, root_dataset
from fedswarm.run.config import RunConfig
from fedswarm.strategy import FitStrategy
from fedswarm.training import LocalTraining

__all__ = ["fltrust_root", "with_attack"]


def fltrust_root(
    config: RunConfig,
    dataset: FederatedDataset,
    model_fn: Callable[[], nn.Module],
    training: LocalTraining,
) -> ReferenceUpdate | None:
    """The coordinator's update on its root data (the participants' ``training``), if the
    aggregator is FLTrust."""
    options = config.aggregator
    if not isinstance(options, FLTrustOptions):
        return None
    data = root_dataset(dataset, options.root_samples, config.seed)
    return RootUpdate(TorchLearner(model_fn), data, training, config.seed)


def with_attack(
    config: RunConfig, dataset: FederatedDataset, strategy: FitStrategy
) -> tuple[FitStrategy, frozenset[str]]:
    """The strategy (wrapped by the colluding adversary when the attack needs one) and the
    malicious participants (none without ``[attack]``)."""
    if config.attack is None:
        return strategy, frozenset()
    attackers = malicious_clients(dataset.client_ids(), config.attack, config.seed)
    if config.attack.attack_kind in COLLUDING:
        return ColludingAttack(strategy, attackers, config.attack), attackers
    return strategy, attackers
