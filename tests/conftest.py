"""Suite-wide settings: one intra-op thread, so small models are fast and timings steady on
a shared 2-core machine (the results do not depend on it); the cuBLAS workspace that
deterministic kernels need for the CUDA tests, set before any test's first CUDA matmul
(torch reads it once per process; see ``fedswarm.pytorch.device``); Hypothesis profiles;
and the per-test timeout's fallback when pytest-timeout is missing."""

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
import torch
from hypothesis import HealthCheck, settings

from fedswarm.pytorch.device import CUBLAS_WORKSPACE_CONFIG

torch.set_num_threads(1)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)

# CI: no wall-clock limits (a stalled shared machine is no bug; pytest-timeout catches hangs),
# and every failure printed with the blob that replays it. Locally: a deadline generous for a
# loaded 2-core machine, so a pathologically slow input still shows. HYPOTHESIS_PROFILE picks.
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=timedelta(seconds=1))
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.hasplugin("timeout"):  # the dev extra installs it; else run untimed
        parser.addini("timeout", "per-test timeout in seconds (pytest-timeout not installed)")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test timeout (pytest-timeout)")


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.pluginmanager.hasplugin("timeout"):
        return None
    return "pytest-timeout is not installed: tests run without a timeout (pip install -e '.[dev]')"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread (tiny models on a shared 2-core box run 5x faster), and undo
    ``simulate``'s process-wide switch to deterministic algorithms."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
