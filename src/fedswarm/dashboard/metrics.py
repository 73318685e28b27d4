"""``/metrics``: the run in Prometheus' text format, drawn from the same snapshot as the page.

A custom collector, not counters bumped by the round loop: a finished run read from its store
(``fedswarm dashboard RUN_DIR``) and a live one give the same series, and a restarted
coordinator's counters continue from what its store holds instead of starting at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fedswarm.dashboard.snapshot import Snapshot, epsilon

__all__ = ["LATENCY_BUCKETS", "registry_for"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_FAILURE_KINDS = ("failure", "refusal")  # the registry's event kinds


class _RunCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        rounds = CounterMetricFamily("fedswarm_rounds_completed", "Rounds committed to the store.")
        rounds.add_metric([], snap.rounds_done)
        yield rounds
        yield _latency(snap)
        yield _failures(snap)
        participants = GaugeMetricFamily(
            "fedswarm_participants", "Participants the registry has seen."
        )
        participants.add_metric([], len(snap.clients))
        yield participants
        yield from _last_round(snap)


def _latency(snap: Snapshot) -> HistogramMetricFamily:
    seconds = [r.seconds for r in snap.records]
    buckets = [(str(b), sum(s <= b for s in seconds)) for b in LATENCY_BUCKETS]
    buckets.append(("+Inf", len(seconds)))
    return HistogramMetricFamily(
        "fedswarm_round_seconds",
        "Wall time of a round (sampling to aggregation).",
        buckets=buckets,
        sum_value=sum(seconds),
    )


def _failures(snap: Snapshot) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "fedswarm_failures",
        "Participants' failures (dropped, late, raised) and refusals (bad input), by kind.",
        labels=["kind"],
    )
    for kind in _FAILURE_KINDS:
        family.add_metric([kind], sum(e.kind == kind for e in snap.events))
    return family


def _last_round(snap: Snapshot) -> Iterator[Metric]:
    if not snap.records:
        return
    last = snap.records[-1]
    values = {
        "fedswarm_round_clients": ("Participants whose updates counted in the last round.",
                                   last.num_clients),
        "fedswarm_train_loss": ("Mean local training loss of the last round.", last.train_loss),
        "fedswarm_epsilon": ("Privacy spent so far (differential privacy's epsilon).",
                             epsilon(last)),
    }  # fmt: skip
    evaluated = [r.central for r in snap.records if r.central is not None]
    if evaluated:
        values["fedswarm_eval_accuracy"] = ("Last central test accuracy.", evaluated[-1].accuracy)
    for name, (doc, value) in values.items():
        if value is not None:
            yield GaugeMetricFamily(name, doc, value=value)


def registry_for(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding the run's series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(snapshot))
    return registry
