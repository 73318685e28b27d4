"""The split-learning modes, apart from their machinery (config reads them without torch)."""

from __future__ import annotations

import enum

__all__ = ["SplitMode"]


class SplitMode(enum.Enum):
    VANILLA = "vanilla"
    U_SHAPED = "u_shaped"
    SPLITFED_V1 = "splitfed_v1"
    SPLITFED_V2 = "splitfed_v2"

    @property
    def in_turns(self) -> bool:
        return self in (SplitMode.VANILLA, SplitMode.U_SHAPED)
