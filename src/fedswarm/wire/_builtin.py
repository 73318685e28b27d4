"""Wire codecs for the variants that ship with fedswarm.

They belong next to their definitions (``fedswarm.algorithms.*``, ``fedswarm.transforms``)
and will move there; they live here until those modules import the registries.
"""

from __future__ import annotations

from fedswarm.algorithms.fedprox import ProxStep
from fedswarm.algorithms.local_sgd import LocalSGDStep
from fedswarm.algorithms.scaffold import ScaffoldExtra, ScaffoldStep
from fedswarm.transforms import ClipNorm
from fedswarm.wire._registry import EXTRAS, STEPS, TRANSFORMS, Part

__all__: list[str] = []

STEPS.register(
    "local_sgd",
    LocalSGDStep,
    encode=lambda step: Part(),
    decode=lambda f, t: LocalSGDStep(),
)
STEPS.register(
    "fedprox",
    ProxStep,
    encode=lambda step: Part(fields={"mu": step.mu}),
    decode=lambda f, t: ProxStep(f.number("mu")),
)
STEPS.register(  # the server's control variate is as long as the model
    "scaffold",
    ScaffoldStep,
    encode=lambda step: Part(tensors={"control": step.control}),
    decode=lambda f, t: ScaffoldStep(t.vector("control", length=t.model_dim)),
)
EXTRAS.register(
    "scaffold",
    ScaffoldExtra,
    encode=lambda extra: Part(tensors={"control_delta": extra.control_delta}),
    decode=lambda f, t: ScaffoldExtra(t.vector("control_delta", length=t.model_dim)),
)
TRANSFORMS.register(
    "clip_norm",
    ClipNorm,
    encode=lambda clip: Part(fields={"max_norm": clip.max_norm}),
    decode=lambda f, t: ClipNorm(f.number("max_norm")),
)
