"""The base of every configuration table (one definition for ``config`` and its parts)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen"]


class Frozen(BaseModel):
    # strict: "5" is not a number and "yes" not a bool; configs are validated in JSON mode
    # (see parse_config) so enum names and arrays still read naturally from TOML.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
