"""Model factories from configuration: which ``nn.Module`` fits which dataset."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Protocol

from torch import nn

from fedswarm.pytorch.models import CNN, MLP, CharLSTM, LogisticRegression
from fedswarm.run.config import ModelConfig, ModelName

__all__ = ["DataSchema", "model_factory"]


class DataSchema(Protocol):
    """What a model needs to know of the data (every ``FederatedDataset`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def input_shape(self) -> tuple[int, ...]: ...


def model_factory(cfg: ModelConfig, data: DataSchema) -> Callable[[], nn.Module]:
    """A zero-argument constructor of the configured model for ``data``'s inputs."""
    shape, classes = data.input_shape, data.num_classes
    features = math.prod(shape)
    if cfg.name is ModelName.MLP:
        return partial(MLP, features, cfg.hidden, classes)
    if cfg.name is ModelName.LOGREG:
        return partial(LogisticRegression, features, classes)
    if cfg.name is ModelName.CNN:
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(
                f"model 'cnn' needs square images (channels, size, size); dataset "
                f"{data.name!r} has samples of shape {shape}: use model 'mlp' or 'logreg'"
            )
        return partial(CNN, shape[0], shape[1], cfg.channels, cfg.hidden[0], classes)
    if len(shape) != 1:
        raise ValueError(f"model 'lstm' needs token sequences; {data.name!r} has shape {shape}")
    return partial(CharLSTM, classes, cfg.embed, cfg.hidden[0], cfg.layers)
