"""``[split]``: a run's split-learning settings, validated at the edge like the rest.

``mode`` alone is enough for the built-in models (cut after the first hidden block and,
U-shaped, before the output layer); the data, model, client optimiser (``[client]``:
batch size, optimiser, learning rate, which serve both sides), evaluation and store come
from the rest of the config as for a federated run. A round is one epoch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedswarm.split.modes import SplitMode

__all__ = ["SplitConfig"]


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    mode: SplitMode
    cut: str | None = Field(
        None, description="the participant's last layer (dotted name); unset: the model's default"
    )
    head_cut: str | None = Field(
        None, description="u_shaped: the head's first layer; unset: the output layer"
    )
    batches_per_exchange: int = Field(
        1, ge=1, description="batches per round trip; above 1, participant steps are delayed"
    )
    clip: float | None = Field(
        None, gt=0, description="clip each example's cut activations to this L2 norm"
    )
    noise: float = Field(0.0, ge=0, description="Gaussian noise std added to cut activations")

    @model_validator(mode="after")
    def _head_cut_is_u_shaped(self) -> SplitConfig:
        if self.head_cut is not None and self.mode is not SplitMode.U_SHAPED:
            raise ValueError(f"split.head_cut is for mode 'u_shaped', not {self.mode.value!r}")
        return self
