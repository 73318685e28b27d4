"""Deployment benchmark: fedswarm's gRPC coordinator and participant processes on loopback.

1. Round time. A coordinator (``GrpcServerTransport``, mutual TLS with a fresh PKI) and 10
   participant processes (``run_participant``, a ``TorchLearner`` MLP of about 10M float32
   parameters, 64 synthetic samples each) run FedAvg rounds; the steady-state round is the
   median of the rounds after the first. The baseline, measured in the same run on the same
   processes, before and after the rounds: (a) compute, each participant's answer to a fit
   instruction without a network (alone, one at a time, and all at once, which is the
   round's critical path with free communication on this machine), plus (b) a raw TCP copy
   of the model's bytes to each participant and as many back (a length prefix, no TLS, no
   other framing); for reference, the same copy over mutual TLS too.
2. Coordinator memory. The coordinator runs in its own process and reports its peak RSS,
   with 10 and with 50 participant processes (numpy participants: see ``deploy_workers``).

The processes are ``bench/deploy_workers.py`` (coordinator, participants) and
``bench/deploy_copy.py`` (the copy's sender); all are stopped at the end. The table is
``bench/deploy_report.py``'s.

    python bench/deployment.py --out FILE           # about 4 min on 2 cores
    python bench/deployment.py --out FILE --quick   # smoke run, about 30 s
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # workers run as `python -m bench.deploy_...`
if __package__ in (None, ""):  # run as `python bench/deployment.py`: import `bench.*` too
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import ExitStack, contextmanager  # noqa: E402
from typing import IO, Any  # noqa: E402

from bench.deploy_report import Deployment, Results, Settings, markdown  # noqa: E402
from fedswarm.security.pki import Role, init_ca, issue  # noqa: E402

__all__ = ["FULL", "QUICK", "main"]

MEMORY_FLOOR_GIB = 2.0  # participants are killed if the machine's free memory falls below
REPLY_TIMEOUT_S = 900.0
FULL = Settings((2500, 4000, 10), 10, rounds=5, memory_clients=(10, 50), memory_rounds=3, reps=3)
QUICK = Settings((500, 1000, 10), 3, rounds=3, memory_clients=(2, 4), memory_rounds=2, reps=2)


class Worker:
    """A process of module ``bench.NAME``; JSON lines on its stdin and stdout, stderr to a log."""

    def __init__(self, name: str, args: Sequence[str], log: Path) -> None:
        self.log = log
        argv = [sys.executable, "-m", f"bench.{name}", *args]
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0
            )

    def send(self, **cmd: Any) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(cmd).encode() + b"\n")

    def read(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            tail = self.log.read_text(errors="replace").splitlines()[-5:]
            why = "timed out" if not ready else f"exited ({self.proc.poll()})"
            raise RuntimeError(f"{self.log.stem} {why}: " + " / ".join(tail))
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.read()

    def close(self) -> None:
        """Close stdin (the worker's cue to exit); kill it if it has not after 10 s."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def workers(
    n: int, settings: Settings, pki: Path, logs: Path, learner: str, guard: MemoryGuard
) -> Iterator[list[Worker]]:
    """``n`` ready participant processes, watched by ``guard``, all stopped afterwards."""
    with ExitStack() as stack:
        started = []
        for i in range(n):
            args = ["--pki", str(pki), "--dims", *map(str, settings.dims), "--name", f"p{i:02d}"]
            args += ["--learner", learner]
            w = Worker("deploy_workers", ["participant", *args], logs / f"p{i:02d}.log")
            stack.callback(w.close)
            started.append(w)
            guard.watched.append(w)
        for w in started:
            w.read()  # {"ready": name}
        yield started


def make_pki(dir: Path, clients: int) -> None:
    init_ca(dir)
    issue(dir, "coordinator", Role.SERVER)
    for i in range(clients):
        issue(dir, f"p{i:02d}", Role.CLIENT)


# -- the baseline -------------------------------------------------------------------------


def compute_alone(fleet: Sequence[Worker], reps: int) -> tuple[float, ...]:
    """Each participant's median fit, one participant at a time."""
    alone = []
    for w in fleet:
        w.ask(cmd="fit")  # warm-up: first calls into torch
        alone.append(statistics.median(w.ask(cmd="fit")["seconds"] for _ in range(reps)))
    return tuple(alone)


def compute_together(fleet: Sequence[Worker], reps: int) -> float:
    """Median wall time of all participants' fits at once."""
    together = []
    for _ in range(reps):
        start = time.perf_counter()
        for w in fleet:
            w.send(cmd="fit")
        for w in fleet:
            w.read()
        together.append(time.perf_counter() - start)
    return statistics.median(together)


def raw_copy(
    fleet: Sequence[Worker], nbytes: int, reps: int, logs: Path, pki: Path | None
) -> float:
    """Median seconds to send ``nbytes`` to every participant and receive as many back, from
    a fresh process (``bench/deploy_copy.py``), over TCP; mutual TLS if ``pki`` is given."""
    args = ["--clients", str(len(fleet)), "--bytes", str(nbytes), "--reps", str(reps)]
    copier = Worker("deploy_copy", args + (["--pki", str(pki)] if pki else []), logs / "copy.log")
    try:
        port = copier.read()["port"]
        for w in fleet:
            w.send(cmd="raw", port=port, bytes=nbytes, reps=reps, tls=pki is not None)
        seconds: list[float] = copier.read()["seconds"]
        for w in fleet:
            w.read()  # {"done": true}
    finally:
        copier.close()
    return statistics.median(seconds)


class MemoryGuard:
    """Watches the machine's available memory (the machine is shared): if it falls below
    ``floor_gib``, kills the participants, and the run in progress fails saying why."""

    def __init__(self, floor_gib: float) -> None:
        self.floor_gib = floor_gib
        self.lowest_gib = available_gib()
        self.tripped = False
        self.watched: list[Worker] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> MemoryGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            self.lowest_gib = min(self.lowest_gib, available_gib())
            if self.lowest_gib < self.floor_gib and not self.tripped:
                self.tripped = True
                for w in self.watched:
                    w.proc.kill()


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / (1 << 20)
    return float("inf")


# -- the deployment -----------------------------------------------------------------------


def deploy(
    fleet: Sequence[Worker], settings: Settings, pki: Path, logs: Path, rounds: int
) -> Deployment:
    """Run ``rounds`` over gRPC: a coordinator process serving ``fleet``."""
    args = ["--pki", str(pki), "--dims", *map(str, settings.dims)]
    args += ["--clients", str(len(fleet)), "--rounds", str(rounds)]
    coord = Worker("deploy_workers", ["coordinator", *args], logs / f"coordinator-{len(fleet)}.log")
    try:
        address = f"127.0.0.1:{coord.read()['port']}"
        for w in fleet:
            w.send(cmd="serve", address=address)
        result = coord.read()
        served = [w.read() for w in fleet]
    finally:
        coord.close()
    fits = tuple(s for p in served for s in p["fit_seconds"])
    peak_rss, cpu = max(p["peak_rss_mib"] for p in served), sum(p["cpu_seconds"] for p in served)
    return Deployment(result, fits, peak_rss, cpu)


def run(settings: Settings, tmp: Path, guard: MemoryGuard) -> Results:
    pki, logs = tmp / "pki", tmp / "logs"
    logs.mkdir()
    make_pki(pki, max(settings.clients, *settings.memory_clients))
    load_start = os.getloadavg()
    progress(f"starting {settings.clients} torch participants")
    with workers(settings.clients, settings, pki, logs, "torch", guard) as fleet:
        progress("baseline: compute alone, compute together, raw copy (plain, TLS)")
        alone = compute_alone(fleet, settings.reps)
        before = baseline(fleet, settings, logs, pki)
        progress(f"{settings.rounds} rounds over gRPC")
        timing = deploy(fleet, settings, pki, logs, settings.rounds)
        progress("baseline again: compute together, raw copy (plain, TLS)")
        after = baseline(fleet, settings, logs, pki)
    memory: dict[int, Deployment | str] = {}
    for n in settings.memory_clients:
        progress(f"memory run with {n} participants")
        try:
            with workers(n, settings, pki, logs, "numpy", guard) as fleet:
                memory[n] = deploy(fleet, settings, pki, logs, settings.memory_rounds)
        except RuntimeError:
            if not guard.tripped:
                raise
            memory[n] = f"stopped: free memory fell below {guard.floor_gib} GiB"
    progress("done")
    together, plain, tls = ((b, a) for b, a in zip(before, after, strict=True))
    load = (load_start, os.getloadavg())
    return Results(settings, alone, together, plain, tls, timing, memory, load, guard.lowest_gib)


def baseline(
    fleet: Sequence[Worker], settings: Settings, logs: Path, pki: Path
) -> tuple[float, float, float]:
    """Seconds of all participants' compute at once, of the plain copy, of the TLS copy."""
    nbytes, reps = 4 * settings.num_params, settings.reps
    return (
        compute_together(fleet, reps),
        raw_copy(fleet, nbytes, reps, logs, None),
        raw_copy(fleet, nbytes, reps, logs, pki),
    )


def progress(what: str, since: float = time.perf_counter()) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.perf_counter() - since:6.1f} s, load {load:5.2f}] {what}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the table")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    with (
        tempfile.TemporaryDirectory(prefix="fedswarm-deployment-") as tmp,
        MemoryGuard(MEMORY_FLOOR_GIB) as guard,
    ):
        results = run(settings, Path(tmp), guard)
    command = "python bench/deployment.py --out FILE" + (" --quick" if args.quick else "")
    report = markdown(results, command)
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
