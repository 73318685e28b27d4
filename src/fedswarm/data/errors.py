"""The one error a loader raises when a dataset's files are not on this machine."""

from __future__ import annotations

__all__ = ["DatasetNotInstalledError", "dataset_not_installed"]


class DatasetNotInstalledError(RuntimeError):
    """A dataset's files are missing; the message says what, where, and how to install it.

    fedswarm never downloads at run time (training machines are often offline), so a missing
    dataset is a setup problem that the person running the job must fix; the message has to
    be enough to fix it without reading the source.
    """


def dataset_not_installed(
    dataset: str, *, missing: str, looked_in: str, install: str
) -> DatasetNotInstalledError:
    """Build the error with its three facts in a fixed, greppable layout."""
    return DatasetNotInstalledError(
        f"{dataset} is not installed: {missing} not found (looked in {looked_in}). "
        f"Install it with: {install}"
    )
