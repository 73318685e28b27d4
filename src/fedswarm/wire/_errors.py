"""The one exception the wire codec raises for anything a peer could have sent."""

from __future__ import annotations

__all__ = ["WireError"]


class WireError(ValueError):
    """Bytes that are not a valid message (or chunk stream), or a message that cannot be
    encoded. The text names the problem and the field, e.g.
    ``fit_res.round: must be >= 0, got -1``."""
