"""The results of ``bench/deployment.py`` and their markdown table."""

from __future__ import annotations

import itertools
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Deployment", "Results", "Settings", "markdown", "steady"]

RSS_KEYS = ("first_upload_rss_mib", "round_rss_mib")  # what the coordinator reports


@dataclass(frozen=True)
class Settings:
    dims: tuple[int, ...]  # MLP layer widths
    clients: int  # participants in the round-time run
    rounds: int  # the first is warm-up
    memory_clients: tuple[int, int]  # the two federation sizes of the memory runs
    memory_rounds: int
    reps: int  # timed repetitions of each baseline

    @property
    def num_params(self) -> int:
        return sum((a + 1) * b for a, b in itertools.pairwise(self.dims))


@dataclass(frozen=True)
class Deployment:
    coordinator: dict[str, Any]  # what deploy_workers.coordinator reports
    fit_seconds: tuple[float, ...]  # every participant's in-round fits
    participant_peak_rss_mib: float  # the largest participant
    participant_cpu_seconds: float  # all participants' CPU time while serving, summed


def steady(round_seconds: Sequence[float]) -> float:
    """The median round after the first (which includes warm-up)."""
    return statistics.median(round_seconds[1:] or round_seconds)


@dataclass(frozen=True)
class Results:
    settings: Settings
    alone: tuple[float, ...]  # each participant's compute, alone
    together: tuple[float, float]  # all participants' compute at once, before and after
    raw_copy: tuple[float, float]  # plain TCP, before and after the rounds
    tls_copy: tuple[float, float]  # mutual TLS, before and after the rounds
    timing: Deployment
    memory: dict[int, Deployment | str]  # by participants; a str says why the run failed
    load: tuple[tuple[float, ...], tuple[float, ...]]  # load averages at start and end
    lowest_available_gib: float  # the machine's MemAvailable, lowest seen


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    cpu = models[0] if models else platform.processor()
    return f"{os.cpu_count()} cores ({cpu}), {ram:.0f} GiB RAM, Python {platform.python_version()}"


def verdict(ratio: float, target: float) -> str:
    return f"**{ratio:.2f}x** (target <= {target:g}x: {'met' if ratio <= target else 'missed'})"


def round_table(r: Results) -> list[str]:
    s, t, alone = r.settings, r.timing, r.alone
    co = t.coordinator
    mb = 4 * s.num_params / 1e6
    rounds = co["round_seconds"]
    compute, copy = statistics.mean(r.together), statistics.mean(r.raw_copy)
    tls = statistics.mean(r.tls_copy)
    round_s, base = steady(rounds), compute + copy
    ideal = max(alone) + copy
    fits = sorted(t.fit_seconds)
    decode_s, fold_s = co["serial_seconds"]
    co_cpu, p_cpu = steady(co["round_cpu_seconds"]), t.participant_cpu_seconds / len(rounds)
    cores = os.cpu_count() or 1
    return [
        f"Round time: {s.clients} participant processes, MLP {'-'.join(map(str, s.dims))} "
        f"({s.num_params / 1e6:.2f}M float32 parameters, {mb:.1f} MB), FedAvg, 64 samples "
        "and 2 local steps per participant, torch with 1 thread per participant.",
        "",
        "| quantity | seconds |",
        "|---|---:|",
        f"| round over gRPC + mutual TLS, steady (median of rounds 2..{len(rounds)}) | "
        f"{round_s:.3f} |",
        f"| every round (the first includes warm-up) | {', '.join(f'{x:.2f}' for x in rounds)} |",
        f"| compute per participant, alone: min / median / max | {min(alone):.3f} / "
        f"{statistics.median(alone):.3f} / {max(alone):.3f} |",
        f"| compute of all {s.clients} at once, before / after the rounds | "
        f"{r.together[0]:.3f} / {r.together[1]:.3f} |",
        f"| raw TCP copy, {s.clients} x {mb:.1f} MB out and {s.clients} x {mb:.1f} MB back, "
        f"before / after the rounds | {r.raw_copy[0]:.3f} / {r.raw_copy[1]:.3f} |",
        f"| baseline: (a) compute of all at once = the critical path with free communication "
        f"on this machine + (b) raw copy, means of before and after | {compute:.3f} + "
        f"{copy:.3f} = {base:.3f} |",
        f"| **round / baseline** | {verdict(round_s / base, 2)} |",
        f"| for reference: the same copy over mutual TLS (Python ssl), before / after | "
        f"{r.tls_copy[0]:.3f} / {r.tls_copy[1]:.3f} |",
        f"| for reference: round / (compute + TLS copy = {compute + tls:.3f} s) | "
        f"{round_s / (compute + tls):.2f}x |",
        f"| for reference: round / (slowest participant alone + raw copy = {ideal:.3f} s), "
        f"the critical path with a core per participant | {round_s / ideal:.2f}x |",
        f"| CPU seconds a round: coordinator (steady median) + participants (mean of all "
        f"rounds) = total; this machine's {cores} cores offer {cores * round_s:.2f} | "
        f"{co_cpu:.2f} + {p_cpu:.2f} = {co_cpu + p_cpu:.2f} |",
        f"| in-round learner.fit per participant: median / max | "
        f"{statistics.median(fits):.3f} / {fits[-1]:.3f} |",
        f"| coordinator's view (steady medians): instructions out -> first upload folded / "
        f"-> last upload folded | {steady(co['first_upload_s']):.3f} / "
        f"{steady(co['exchange_s']):.3f} |",
        f"| coordinator, per upload, one at a time: decode / fold into the running mean | "
        f"{decode_s:.3f} / {fold_s:.3f} |",
    ]


def memory_table(r: Results) -> list[str]:
    s, t = r.settings, r.timing
    lines = [
        f"Coordinator memory (its own process, {s.memory_rounds} rounds; participants with a "
        "numpy stand-in learner, so that the machine holds 50 of them):",
        "",
        "| participants | after setup | at each round's first upload | after each round "
        "| peak | peak - setup | steady round (s) |",
        "|---:|---:|---|---|---:|---:|---:|",
    ]
    peaks: dict[int, tuple[float, float]] = {}
    for n, d in sorted(r.memory.items()):
        if isinstance(d, str):
            lines.append(f"| {n} | {d} | | | | | |")
            continue
        co = d.coordinator
        setup, peak = co["setup_rss_mib"], co["peak_rss_mib"]
        peaks[n] = setup, peak
        first, after = (", ".join(f"{x:.0f}" for x in co[k]) for k in RSS_KEYS)
        lines.append(
            f"| {n} | {setup:.0f} MiB | {first} MiB | {after} MiB | {peak:.0f} MiB "
            f"| {peak - setup:.0f} MiB | {steady(co['round_seconds']):.2f} |"
        )
    lines.append("")
    small, large = s.memory_clients
    if small in peaks and large in peaks:
        (s0, p0), (s1, p1) = peaks[small], peaks[large]
        lines.append(
            f"Peak RSS, {large} / {small} participants: {verdict(p1 / p0, 1.5)}; "
            f"of the growth above setup: {(p1 - s1) / (p0 - s0):.2f}x."
        )
    numpy_rss = [d.participant_peak_rss_mib for d in r.memory.values() if not isinstance(d, str)]
    failures = [t.coordinator["failures"]]
    failures += [d.coordinator["failures"] for d in r.memory.values() if not isinstance(d, str)]
    lines.append(
        f"Coordinator peak RSS in the round-time run ({s.clients} torch participants): "
        f"{t.coordinator['peak_rss_mib']:.0f} MiB. Largest participant peak RSS: "
        f"{t.participant_peak_rss_mib:.0f} MiB (torch), {max(numpy_rss, default=0):.0f} MiB "
        f"(numpy). Failed replies: {sum(failures)}. Lowest MemAvailable on the machine: "
        f"{r.lowest_available_gib:.1f} GiB."
    )
    return lines


def markdown(r: Results, command: str) -> str:
    load = " -> ".join(", ".join(f"{x:.2f}" for x in la) for la in r.load)
    head = [
        f"Machine: {machine()}. Load average (1, 5, 15 min) at start -> end: {load}.",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join([*head, *round_table(r), "", *memory_table(r)]) + "\n"
