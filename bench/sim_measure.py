"""Measuring a child process of the simulation benchmark from outside: the resident memory
and CPU time of its whole process tree, and how busy the rest of the machine was (Linux
``/proc``; see proc(5))."""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SAMPLE_EVERY_S", "OtherLoad", "TreeSampler", "descendants", "process_table"]

SAMPLE_EVERY_S = 0.05
PAGE, TICK = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
Process = tuple[int, str, float, int]  # parent pid, start time, CPU seconds, resident bytes


def process_table() -> dict[int, Process]:
    """Every process on the machine, from ``/proc/<pid>/stat``."""
    table: dict[int, Process] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        f = stat.rsplit(")", 1)[1].split()  # after the command name; f[0] is field 3
        cpu = (int(f[11]) + int(f[12])) / TICK  # utime + stime
        table[int(entry.name)] = (int(f[1]), f[19], cpu, int(f[21]) * PAGE)
    return table


def descendants(table: dict[int, Process], root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree += [pid] if pid in table else []
        todo += children.get(pid, [])
    return tree


@dataclass
class TreeSampler:
    """Every ``SAMPLE_EVERY_S``, in a thread: the resident memory of ``pid``'s process tree
    (summed; pages shared by several processes, such as torch's libraries, count once per
    process) and each tree process's CPU time so far (a process's last ~50 ms before it
    exits are missed)."""

    pid: int
    peak_rss: int = 0
    _cpu: dict[tuple[int, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            table = process_table()
            tree = descendants(table, self.pid)
            self.peak_rss = max(self.peak_rss, sum(table[p][3] for p in tree))
            self._cpu.update({(p, table[p][1]): table[p][2] for p in tree})
            self._stop.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())


class OtherLoad:
    """CPU seconds the machine spent outside a sampled tree and this process (the
    sampler's own cost): timings taken on a loaded machine mean little, so every row
    says how loaded the machine was."""

    def __init__(self) -> None:
        self._start = self._readings()

    @staticmethod
    def _readings() -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (user + nice + system + irq + softirq + steal) / TICK, own.ru_utime + own.ru_stime

    def seconds(self, tree: TreeSampler) -> float:
        (busy0, own0), (busy1, own1) = self._start, self._readings()
        return max(0.0, busy1 - busy0 - (own1 - own0) - tree.cpu_seconds)
