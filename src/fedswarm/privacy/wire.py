"""The wire form of the privacy transforms, for participants on other machines."""

from __future__ import annotations

from fedswarm.privacy.mechanisms import GaussianNoise
from fedswarm.wire import Codec, Part

__all__ = ["register_privacy"]


def register_privacy(codec: Codec) -> None:
    """Register local DP's noise transform (``default_codec().extended(register_privacy)``)."""
    codec.transforms.register(
        "gaussian_noise",
        GaussianNoise,
        encode=lambda noise: Part(fields={"std": noise.std}),
        decode=lambda f, t: GaussianNoise(f.number("std")),
    )
