"""Byzantine robustness matrix: every aggregator x every attack (and none).

Fashion-MNIST, Dirichlet(0.5) label skew over 100 participants, all 100 sampled every
round, 20% malicious (chosen from the seed), multinomial logistic regression (7,850
parameters), E = 1, B = 32, lr = 0.05, ``--rounds`` rounds (default 10). ``f = 20`` for
Krum, Multi-Krum and Bulyan (Bulyan needs n >= 4f + 3 = 83); trimmed mean cuts
``beta = 0.2`` from each end; norm bounding at ``bound = 1.0``; FLTrust's root set is 100
samples of the pooled training data. The backdoor trigger is a 3x3 white corner patch with
target label 0 on half of each attacker's samples; its success rate is the accuracy on
the central test set's triggered non-target images (for runs without the backdoor it is the
base rate at which the model calls a triggered image class 0).

Aggregation seconds per round is the aggregator alone on the stacked updates (the mean
included, stacked too), timed around each call. Each run is a :class:`RunConfig` run through
``build`` + ``Experiment.train``, the path of ``fedswarm run`` minus the run directory.

    python bench/robust.py --out /tmp/robust.md                  # 100 runs
    python bench/robust.py --rounds 2 --aggregators mean median  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedswarm.aggregation import Aggregate, AggregationContext, Aggregator
from fedswarm.attacks import ColludingAttack, backdoor_test
from fedswarm.run.build import build
from fedswarm.run.config import loads_config
from fedswarm.run.experiment import Experiment
from fedswarm.strategy import Strategy

AGGREGATORS = {
    "mean": "",
    "median": "",
    "trimmed_mean": "beta = 0.2",
    "krum": "f = 20",
    "multi_krum": "f = 20",
    "bulyan": "f = 20",
    "geometric_median": "",
    "centered_clip": "",
    "norm_bound": "bound = 1.0",
    "fltrust": "",
}
ATTACKS = {
    "none": "",
    "label_flip": "",
    "backdoor": "target = 0\ntrigger = 3",
    "sign_flip": "",
    "gaussian": "",
    "scaling": "scale = 10.0",
    "alie": "",
    "ipm": "",
    "min_max": "",
    "min_sum": "",
}
TARGET, TRIGGER = 0, 3


def config_text(aggregator: str, attack: str, rounds: int) -> str:
    attack_table = (
        f"[attack]\nkind = '{attack}'\nfraction = 0.2\n{ATTACKS[attack]}\n"
        if attack != "none"
        else ""
    )
    return f"""
seed = 0
rounds = {rounds}
[data]
name = "fashion_mnist"
num_clients = 100
partition = "dirichlet"
alpha = 0.5
[model]
name = "logreg"
[client]
epochs = 1
batch_size = 32
lr = 0.05
[evaluation]
every = {rounds}
[simulation]
backend = "vectorized"
[strategy]
aggregator = "{aggregator}"
[aggregator]
{AGGREGATORS[aggregator]}
{attack_table}"""


@dataclass(eq=False)
class Timed:
    """The aggregator, timed (stacked: it does not offer the streaming fold)."""

    inner: Aggregator
    seconds: list[float] = field(default_factory=list)

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        start = time.perf_counter()
        out = self.inner(updates, weights, ctx)
        self.seconds.append(time.perf_counter() - start)
        return out


def timed(exp: Experiment) -> tuple[Experiment, Timed]:
    strategy = exp.strategy
    inner = strategy.inner if isinstance(strategy, ColludingAttack) else strategy
    assert isinstance(inner, Strategy)
    clock = Timed(inner.aggregator)
    wrapped: Any = replace(inner, aggregator=clock)
    if isinstance(strategy, ColludingAttack):
        wrapped = replace(strategy, inner=wrapped)
    return replace(exp, strategy=wrapped), clock


def run_one(aggregator: str, attack: str, rounds: int) -> dict[str, Any]:
    exp, clock = timed(build(loads_config(config_text(aggregator, attack, rounds))))
    start = time.perf_counter()
    final = exp.train()
    test = exp.dataset.central_test
    trigger_value = float(test.x.max())
    bd = backdoor_test(test, TARGET, TRIGGER, trigger_value)
    return {
        "aggregator": aggregator,
        "attack": attack,
        "accuracy": exp.learner.evaluate(final.params, test).accuracy,
        "backdoor": exp.learner.evaluate(final.params, bd).accuracy,
        "agg_s": float(np.mean(clock.seconds)),
        "run_s": time.perf_counter() - start,
    }


def table(rows: list[dict[str, Any]], key: str, fmt: str) -> str:
    aggs = list(dict.fromkeys(r["aggregator"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    cell = {(r["aggregator"], r["attack"]): r[key] for r in rows}
    lines = ["| aggregator | " + " | ".join(attacks) + " |", "|---" * (len(attacks) + 1) + "|"]
    for a in aggs:
        vals = [format(cell[(a, k)], fmt) if (a, k) in cell else "" for k in attacks]
        lines.append(f"| {a} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def tables(rows: list[dict[str, Any]]) -> str:
    return "\n\n".join(
        [
            "Final accuracy\n\n" + table(rows, "accuracy", ".3f"),
            "Backdoor success rate\n\n" + table(rows, "backdoor", ".3f"),
            "Aggregation seconds per round\n\n" + table(rows, "agg_s", ".4f"),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--aggregators", nargs="*", default=list(AGGREGATORS))
    p.add_argument("--attacks", nargs="*", default=list(ATTACKS))
    p.add_argument("--out", type=Path, help="markdown tables here")
    p.add_argument("--jsonl", type=Path, help="one JSON line per run, appended")
    p.add_argument("--tables-from", type=Path, help="only print the tables of a --jsonl file")
    args = p.parse_args(argv)
    if args.tables_from:
        rows = [json.loads(line) for line in args.tables_from.read_text().splitlines()]
        print(tables(rows))
        return
    rows = []
    for agg in args.aggregators:
        for attack in args.attacks:
            row = run_one(agg, attack, args.rounds)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    text = tables(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
