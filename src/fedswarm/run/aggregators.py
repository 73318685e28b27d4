"""The ``[aggregator]`` table: each kernel's options, checked where they are set.

``[strategy] aggregator = "krum"`` names the kernel; its options go in ``[aggregator]``
(``f = 2``). The table is read with the named kernel's model, so an option of another
kernel (``beta`` for Krum) is an unknown key, named. Limits that involve other tables
(Krum needs ``n >= 2f + 3`` participants a round, Bulyan ``n >= 4f + 3``) are checked by
:func:`check_aggregator` with the keys named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, assert_never

import numpy as np
from pydantic import BaseModel, Field

from fedswarm.aggregation import (
    Aggregator,
    AggregatorName,
    Bulyan,
    CenteredClip,
    FLTrust,
    GeometricMedian,
    Krum,
    Median,
    MultiKrum,
    NormBound,
    ReferenceUpdate,
    TrimmedMean,
    WeightedMean,
)
from fedswarm.data.arrays import ArrayDataset, FederatedDataset
from fedswarm.learner import Learner
from fedswarm.params import Params
from fedswarm.run._frozen import Frozen
from fedswarm.training import GradientCorrection, LocalTraining

__all__ = [
    "OPTIONS_BY_NAME",
    "AggregatorConfig",
    "MeanOptions",
    "RootUpdate",
    "build_aggregator",
    "check_aggregator",
    "root_dataset",
]


class MeanOptions(Frozen):
    name: Literal["mean"] = "mean"


class MedianOptions(Frozen):
    name: Literal["median"]


class TrimmedMeanOptions(Frozen):
    name: Literal["trimmed_mean"]
    beta: float = Field(0.1, ge=0, lt=0.5, description="fraction cut from each end")


class KrumOptions(Frozen):
    name: Literal["krum", "bulyan"]
    f: int = Field(1, ge=0, description="Byzantine participants tolerated per round")


class MultiKrumOptions(Frozen):
    name: Literal["multi_krum"]
    f: int = Field(1, ge=0)
    m: int | None = Field(None, ge=1, description="updates averaged; unset: n - f")


class GeometricMedianOptions(Frozen):
    name: Literal["geometric_median"]
    iterations: int = Field(100, ge=1, description="Weiszfeld steps at most")
    tol: float = Field(1e-6, gt=0, description="stop when a step is this fraction of the spread")
    eps: float = Field(1e-8, gt=0)


class CenteredClipOptions(Frozen):
    name: Literal["centered_clip"]
    tau: float = Field(1.0, gt=0, description="clipping radius")
    iterations: int = Field(3, ge=1)


class NormBoundOptions(Frozen):
    name: Literal["norm_bound"]
    bound: float = Field(gt=0, description="largest L2 norm of an update that counts")


class FLTrustOptions(Frozen):
    name: Literal["fltrust"]
    root_samples: int = Field(
        100, ge=1, description="the coordinator's root dataset, drawn from the pooled training data"
    )


AggregatorConfig = Annotated[
    MeanOptions
    | MedianOptions
    | TrimmedMeanOptions
    | KrumOptions
    | MultiKrumOptions
    | GeometricMedianOptions
    | CenteredClipOptions
    | NormBoundOptions
    | FLTrustOptions,
    Field(discriminator="name"),
]

OPTIONS_BY_NAME: Mapping[str, type[BaseModel]] = {
    "mean": MeanOptions,
    "median": MedianOptions,
    "trimmed_mean": TrimmedMeanOptions,
    "krum": KrumOptions,
    "bulyan": KrumOptions,
    "multi_krum": MultiKrumOptions,
    "geometric_median": GeometricMedianOptions,
    "centered_clip": CenteredClipOptions,
    "norm_bound": NormBoundOptions,
    "fltrust": FLTrustOptions,
}

_MIN_CLIENTS = {"krum": (2, "2f + 3"), "multi_krum": (2, "2f + 3"), "bulyan": (4, "4f + 3")}


def check_aggregator(
    name: AggregatorName, options: AggregatorConfig, per_round: int | None
) -> None:
    """Raise naming the keys if ``options`` are not for ``name`` or need more participants a
    round than ``per_round`` (None: not fixed by the config; the kernel then degrades)."""
    if options.name != name.value:
        raise ValueError(
            f"strategy.aggregator = {name.value!r} but the [aggregator] table holds options "
            f"for {options.name!r}"
        )
    if isinstance(options, KrumOptions | MultiKrumOptions) and per_round is not None:
        k, formula = _MIN_CLIENTS[options.name]
        if per_round < k * options.f + 3:
            raise ValueError(
                f"aggregator.f = {options.f}: {options.name} needs n >= {formula} = "
                f"{k * options.f + 3} participants a round, but strategy.clients_per_round / "
                f"strategy.fraction * data.num_clients give n = {per_round}"
            )


def build_aggregator(options: AggregatorConfig, root: ReferenceUpdate | None) -> Aggregator:
    """The kernel ``options`` describe; FLTrust's ``root`` is the coordinator's own update."""
    match options:
        case MeanOptions():
            return WeightedMean()
        case MedianOptions():
            return Median()
        case TrimmedMeanOptions():
            return TrimmedMean(options.beta)
        case KrumOptions():
            return Krum(options.f) if options.name == "krum" else Bulyan(options.f)
        case MultiKrumOptions():
            return MultiKrum(options.f, options.m)
        case GeometricMedianOptions():
            return GeometricMedian(options.iterations, options.tol, options.eps)
        case CenteredClipOptions():
            return CenteredClip(options.tau, options.iterations)
        case NormBoundOptions():
            return NormBound(options.bound)
        case FLTrustOptions():
            if root is None:
                raise ValueError("aggregator 'fltrust' needs the coordinator's root update")
            return FLTrust(root)
    assert_never(options)


def root_dataset(dataset: FederatedDataset, samples: int, seed: int) -> ArrayDataset:
    """FLTrust's root data: ``samples`` drawn uniformly (from ``seed``) from the pooled
    training data of every client. The coordinator holds this copy; in a real deployment it
    is data the operator collected itself (Cao et al. use 100 samples)."""
    pool = [dataset.client(c).train for c in dataset.client_ids()]
    sizes = np.array([len(d) for d in pool])
    rng = np.random.default_rng([seed, 0xF17])
    picks = rng.choice(int(sizes.sum()), size=min(samples, int(sizes.sum())), replace=False)
    owner = np.searchsorted(np.cumsum(sizes), np.sort(picks), side="right")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    parts = [pool[c].subset(np.sort(picks)[owner == c] - starts[c]) for c in np.unique(owner)]
    return ArrayDataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


@dataclass(frozen=True, eq=False)
class RootUpdate:
    """The coordinator's update on its root data: the participants' local training, from
    the global model, with a seed of its own each round."""

    learner: Learner
    data: ArrayDataset
    training: LocalTraining
    seed: int

    def __call__(self, params: Params, round_: int) -> np.ndarray:
        fit = self.learner.fit(
            params, self.data, self.training, GradientCorrection(), self.seed + round_
        )
        out: np.ndarray = fit.params - params.flat
        return out
