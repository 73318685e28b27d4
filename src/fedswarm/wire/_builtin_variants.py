"""Wire codecs for the variants that ship with fedswarm.

They belong next to their definitions (``fedswarm.algorithms.*``, ``fedswarm.transforms``)
and will move there, each algorithm module with its own ``register`` function; they live
here until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedswarm.algorithms.fedprox import ProxStep
from fedswarm.algorithms.local_sgd import LocalSGDStep
from fedswarm.algorithms.scaffold import ScaffoldExtra, ScaffoldStep
from fedswarm.transforms import ClipNorm
from fedswarm.wire._registry import Part
from fedswarm.wire._tensors import check_vector

if TYPE_CHECKING:
    from fedswarm.wire._codec import Codec

__all__ = ["register_builtin_variants"]


def register_builtin_variants(codec: Codec) -> None:
    """Register fedswarm's client steps, reply extras and update transforms into ``codec``
    (one being built by :meth:`Codec.extended`)."""
    codec.steps.register(
        "local_sgd",
        LocalSGDStep,
        encode=lambda step: Part(),
        decode=lambda f, t: LocalSGDStep(),
    )
    codec.steps.register(
        "fedprox",
        ProxStep,
        encode=lambda step: Part(fields={"mu": step.mu}),
        decode=lambda f, t: ProxStep(f.number("mu")),
    )
    codec.steps.register(  # the server's control variate is as long as the model
        "scaffold",
        ScaffoldStep,
        encode=_encode_scaffold_step,
        decode=lambda f, t: ScaffoldStep(t.vector("control", length=t.model_dim)),
    )
    codec.extras.register(
        "scaffold",
        ScaffoldExtra,
        encode=_encode_scaffold_extra,
        decode=lambda f, t: ScaffoldExtra(t.vector("control_delta", length=t.model_dim)),
    )
    codec.transforms.register(
        "clip_norm",
        ClipNorm,
        encode=lambda clip: Part(fields={"max_norm": clip.max_norm}),
        decode=lambda f, t: ClipNorm(f.number("max_norm")),
    )


def _encode_scaffold_step(step: ScaffoldStep) -> Part:
    return Part(tensors={"control": check_vector(step.control, "tensor 'step.control'")})


def _encode_scaffold_extra(extra: ScaffoldExtra) -> Part:
    delta = check_vector(extra.control_delta, "tensor 'extra.control_delta'")
    return Part(tensors={"control_delta": delta})
