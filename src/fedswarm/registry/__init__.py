"""The model registry: a run's versions with their lineage (parent, round, contributors,
config hash, code version), diffs, exports, rollbacks and forgetting (``fedswarm models``).
Contribution scores are in :mod:`fedswarm.registry.scores` (it builds the experiment, so
it imports torch; this package does not)."""

from fedswarm.registry._forget import Forgotten, forget
from fedswarm.registry._versions import (
    Lineage,
    Rollback,
    TensorChange,
    diff_versions,
    export_version,
    find,
    lineage,
    open_run,
    rollbacks,
)

__all__ = [
    "Forgotten",
    "Lineage",
    "Rollback",
    "TensorChange",
    "diff_versions",
    "export_version",
    "find",
    "forget",
    "lineage",
    "open_run",
    "rollbacks",
]
