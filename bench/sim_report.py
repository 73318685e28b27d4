"""The simulation benchmark's report: one row per (workload, system), the ratios and the
issue's targets, as Markdown and JSON."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.sim_measure import SAMPLE_EVERY_S
from bench.sim_workloads import Measured, System

__all__ = ["MIB", "Row", "machine", "markdown_report", "progress", "ratios_table", "row_json"]

MIB = 1 << 20


@dataclass(frozen=True)
class Row:
    workload: str
    system: System
    measured: Measured | None
    wall_seconds: float = 0.0  # the child process, start to exit: imports and setup included
    peak_rss: int = 0  # bytes, process tree
    other_load: float = 0.0  # CPU cores busy outside the child's tree meanwhile (mean)
    status: str = "ok"  # otherwise why there is no measurement

    @property
    def rounds_seconds(self) -> float:
        return sum(self.measured.round_seconds) if self.measured else float("nan")

    @property
    def later_rounds_seconds(self) -> float:
        """Rounds 2..R: without the first round (Flower's Ray starts there)."""
        return sum(self.measured.round_seconds[1:]) if self.measured else float("nan")

    @property
    def updates_per_second(self) -> float:
        return self.measured.clients_trained / self.rounds_seconds if self.measured else 0.0


def machine() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": f"{os.cpu_count()} cores, {cpu}",
        "memory": f"{mem_kib / (1 << 20):.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flwr": version("flwr"),
        "ray": version("ray"),
    }


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def results_table(rows: Sequence[Row]) -> str:
    head = ["workload", "system", "wall s", "rounds s", "rounds 2..R s", "client updates/s"]
    head += ["peak RSS MiB", "final acc", "other load", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.measured is None:
            cells = [r.workload, r.system.value, *(["-"] * 7), r.status]
        else:
            cells = [
                r.workload,
                r.system.value,
                f"{r.wall_seconds:.1f}",
                f"{r.rounds_seconds:.2f}",
                f"{r.later_rounds_seconds:.2f}",
                f"{r.updates_per_second:.0f}",
                f"{r.peak_rss / MIB:.0f}",
                f"{r.measured.accuracy:.4f}",
                f"{r.other_load:.2f}",
                r.measured.note,
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _targets(name: str, row: Row, plain: Row | None, flower: Row | None) -> str:
    """Which of the issue's targets ``row`` misses (only those that could be checked)."""
    missed, limit = [], 1.3 if name == "w3" else 1.15
    if plain and plain.measured and row.measured:
        if row.rounds_seconds > limit * plain.rounds_seconds:
            missed.append(f"rounds > {limit}x plain")
        if name != "w3" and abs(row.measured.accuracy - plain.measured.accuracy) > 0.01:
            missed.append("acc off plain by > 0.01")
    if flower and flower.measured and row.measured:
        if flower.rounds_seconds < 50 * row.rounds_seconds:
            missed.append("< 50x faster than Flower")
        if row.peak_rss > flower.peak_rss / 4:
            missed.append("RSS > 1/4 of Flower's")
    if name == "w3" and row.peak_rss >= 2 << 30:
        missed.append("RSS >= 2 GiB")
    return "missed: " + "; ".join(missed) if missed else "met"


def _ratio(a: float, b: float, digits: int = 2) -> str:
    return _fmt(a / b, digits) if b > 0 else "n/a"


def _ratio_cells(r: Row, plain: Row | None, flower: Row | None) -> list[str]:
    """rounds / plain and Flower / fedswarm, each as "all rounds (rounds 2..R)"."""
    cells = []
    for num, den, digits in ((r, plain, 2), (flower, r, 1)):
        if num is None or den is None:
            cells.append("n/a")
            continue
        whole = _ratio(num.rounds_seconds, den.rounds_seconds, digits)
        later = _ratio(num.later_rounds_seconds, den.later_rounds_seconds, digits)
        cells.append(f"{whole} ({later})")
    return cells


def ratios_table(rows: Sequence[Row]) -> str:
    head = ["workload", "fedswarm backend", "rounds / plain", "Flower rounds / fedswarm"]
    head += ["RSS / Flower RSS", "acc - plain acc", "targets (all rounds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == name]
        by = {r.system: r for r in mine if r.measured is not None}
        plain, flower = by.get(System.PLAIN), by.get(System.FLOWER)
        for r in (r for r in mine if r.system.is_fedswarm and r.measured is not None):
            assert r.measured is not None
            acc = "n/a"
            if plain is not None and plain.measured is not None:
                acc = f"{r.measured.accuracy - plain.measured.accuracy:+.4f}"
            cells = [name, r.system.value, *_ratio_cells(r, plain, flower)]
            cells += [_ratio(r.peak_rss, flower.peak_rss) if flower else "n/a", acc]
            cells.append(_targets(name, r, plain, flower))
            lines.append("| " + " | ".join(cells) + " |")
    legend = "Ratios of all rounds' time, and in brackets of rounds 2..R only.\n\n"
    return legend + "\n".join(lines) + "\n"


LEGEND = (
    "wall: the child process from start to exit (imports, data loading, worker and Ray "
    "start-up included); rounds: the sum of the fit rounds' times (sampling to "
    "aggregation), evaluation excluded; rounds 2..R: the same without round 1 (fedswarm "
    "starts its workers and Ray actors before round 1, Flower its Ray actors in round 1); "
    "client updates/s: clients trained / rounds; peak RSS: the child and all its "
    f"descendants, summed, sampled every {SAMPLE_EVERY_S * 1000:.0f} ms; other load: mean "
    "CPU cores that other processes on the machine used meanwhile."
)


def markdown_report(rows: Sequence[Row], command: str, info: dict[str, str]) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in info.items())
    return (
        f"Machine:\n\n{facts}\n\nCommand:\n\n```bash\n{command}\n```\n\n"
        f"{results_table(rows)}\n{LEGEND}\n\n{ratios_table(rows)}"
    )


def progress(row: Row) -> str:
    return (
        f": wall {row.wall_seconds:.1f}s rounds {row.rounds_seconds:.2f}s peak "
        f"{row.peak_rss / MIB:.0f} MiB, other processes busy {row.other_load:.2f} cores"
    )


def row_json(row: Row) -> dict[str, Any]:
    return {
        "workload": row.workload,
        "system": row.system.value,
        "status": row.status,
        "wall_seconds": row.wall_seconds,
        "rounds_seconds": row.rounds_seconds if row.measured else None,
        "peak_rss_bytes": row.peak_rss,
        "other_load_cores": row.other_load,
        "measured": asdict(row.measured) if row.measured else None,
    }
