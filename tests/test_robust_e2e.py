"""End to end on IID digits (20 participants, 30 rounds, an MLP): robust aggregators cost
little without attackers, and the median and trimmed mean hold against 20% sign-flippers
that wreck the mean. Each run takes 1-3 s here."""

from __future__ import annotations

from functools import cache

import pytest

from fedswarm.run.build import build
from fedswarm.run.config import loads_config

pytestmark = pytest.mark.slow  # about 35 s in all: 14 runs of 30 rounds

OPTIONS = {
    "mean": "",
    "median": "",
    "trimmed_mean": "beta = 0.2",
    "krum": "f = 4",
    "multi_krum": "f = 4",
    "bulyan": "f = 4",
    "geometric_median": "",
    "centered_clip": "",
    "norm_bound": "bound = 2.0",
    "fltrust": "",
}


@cache
def accuracy(aggregator: str, attack: str = "") -> float:
    text = f"""
seed = 0
rounds = 30
[data]
name = "digits"
num_clients = 20
[model]
name = "mlp"
hidden = [32]
[client]
epochs = 3
lr = 0.1
[evaluation]
every = 100
[strategy]
aggregator = "{aggregator}"
[aggregator]
{OPTIONS[aggregator]}
{attack}
"""
    exp = build(loads_config(text))
    final = exp.train()
    return exp.learner.evaluate(final.params, exp.dataset.central_test).accuracy


KRUM_IID = pytest.mark.xfail(
    strict=True,
    reason="Krum keeps one participant's update a round, so without attackers it learns from "
    "1/n of the data per round: 0.81 against the mean's 0.95 here (Blanchard et al. note "
    "the same cost; Multi-Krum and Bulyan average and do not pay it)",
)


@pytest.mark.parametrize(
    "aggregator",
    [pytest.param(a, marks=KRUM_IID) if a == "krum" else a for a in OPTIONS if a != "mean"],
)
def test_without_attackers_a_robust_aggregator_is_within_002_of_the_mean(aggregator: str) -> None:
    assert accuracy("mean") > 0.9
    assert abs(accuracy(aggregator) - accuracy("mean")) <= 0.02


SIGN_FLIP = "[attack]\nkind = 'sign_flip'\nfraction = 0.2"


def test_sign_flippers_drive_the_mean_toward_chance() -> None:
    assert accuracy("mean", SIGN_FLIP) < 0.3  # chance is 0.1; clean is 0.95


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean"])
def test_median_and_trimmed_mean_stay_near_the_clean_run(aggregator: str) -> None:
    assert accuracy(aggregator, SIGN_FLIP) >= accuracy("mean") - 0.05
