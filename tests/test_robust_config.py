"""The ``[aggregator]`` and ``[attack]`` tables: parsed into kernels, refused with the key
named, and composed with every strategy."""

from __future__ import annotations

import numpy as np
import pytest

from fedswarm.aggregation import Bulyan, Krum, Median, TrimmedMean, WeightedMean
from fedswarm.attacks import ColludingAttack
from fedswarm.run.build import build, build_strategy
from fedswarm.run.config import ConfigError, dump_config, loads_config

BASE = """
seed = 0
rounds = 2
[data]
name = "digits"
num_clients = 10
[model]
name = "logreg"
[evaluation]
central = true
[simulation]
backend = "sequential"
"""


def cfg(strategy: str, extra: str = "") -> str:
    return BASE + f"[strategy]\n{strategy}\n{extra}"


def test_the_named_kernel_gets_its_options() -> None:
    config = loads_config(cfg('aggregator = "krum"', "[aggregator]\nf = 2\n"))
    assert build_strategy(config).aggregator == Krum(2)
    trimmed = loads_config(cfg('aggregator = "trimmed_mean"', "[aggregator]\nbeta = 0.2\n"))
    assert build_strategy(trimmed).aggregator == TrimmedMean(0.2)
    assert build_strategy(loads_config(cfg('aggregator = "median"'))).aggregator == Median()
    assert build_strategy(loads_config(BASE)).aggregator == WeightedMean()


def test_the_resolved_config_is_a_fixed_point() -> None:
    config = loads_config(cfg('aggregator = "bulyan"', "[aggregator]\nf = 1\n"))
    again = loads_config(dump_config(config))
    assert again == config
    assert dump_config(again) == dump_config(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (cfg('aggregator = "krum"', "[aggregator]\nbeta = 0.1\n"), "unknown key 'aggregator.beta'"),
        (cfg('aggregator = "mean"', "[aggregator]\nf = 1\n"), "unknown key 'aggregator.f'"),
        (cfg('aggregator = "krum"', "[aggregator]\nname = 'krum'\n"), "strategy.aggregator"),
        (cfg('aggregator = "krun"'), "strategy.aggregator"),
        (cfg('aggregator = "trimmed_mean"', "[aggregator]\nbeta = 0.5\n"), "aggregator.beta"),
        (cfg('aggregator = "norm_bound"'), "aggregator.bound"),
        (
            cfg('aggregator = "bulyan"\nclients_per_round = 10', "[aggregator]\nf = 2\n"),
            "aggregator.f = 2: bulyan needs n >= 4f \\+ 3 = 11",
        ),
        (
            cfg('aggregator = "krum"\nfraction = 0.5', "[aggregator]\nf = 2\n"),
            "krum needs n >= 2f \\+ 3 = 7 .* n = 5",
        ),
        (cfg("", "[attack]\nkind = 'sign_flip'\nsigma = 1.0\n"), "unknown key 'attack.sigma'"),
        (cfg("", "[attack]\nkind = 'sign_flip'\nfraction = 0.2\ncount = 2\n"), "one of"),
        (cfg("", "[attack]\nkind = 'sign_flip'\ncount = 11\n"), "attack.count = 11"),
        (cfg("", "[attack]\nkind = 'poison'\n"), "attack"),
    ],
)
def test_misplaced_or_impossible_options_are_refused_by_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loads_config(text)


def test_bulyan_at_its_limit_is_accepted() -> None:
    config = loads_config(cfg('aggregator = "bulyan"', "[aggregator]\nf = 1\n"))  # 10 >= 7
    assert build_strategy(config).aggregator == Bulyan(1)


def test_a_colluding_attack_wraps_the_strategy_and_picks_attackers_from_the_seed() -> None:
    text = cfg('aggregator = "median"', "[attack]\nkind = 'alie'\nfraction = 0.3\n")
    exp = build(loads_config(text))
    assert isinstance(exp.strategy, ColludingAttack)
    assert len(exp.strategy.attackers) == 3
    assert exp.clients.attackers == exp.strategy.attackers
    assert build(loads_config(text)).clients.attackers == exp.clients.attackers


STRATEGIES = [
    'name = "fedavg"',
    'name = "fedavgm"',
    'name = "fedprox"\nmu = 0.01',
    'name = "fedadam"\nserver_lr = 0.01',
    'name = "scaffold"',
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("aggregator", ["median", "krum", "geometric_median"])
def test_every_strategy_composes_with_a_robust_aggregator(strategy: str, aggregator: str) -> None:
    """The aggregator replaces only the mean: the server optimiser and the client update
    (SCAFFOLD's control variates) are the preset's, and the round reports the scores."""
    config = loads_config(cfg(f'{strategy}\naggregator = "{aggregator}"'))
    exp = build(config)
    reports = []
    final = exp.train(lambda p: reports.append(p.report))
    assert not np.array_equal(final.params.flat, exp.initial_state().params.flat)
    assert np.all(np.isfinite(final.params.flat))
    assert "robust/distance_max" in reports[-1].metrics
