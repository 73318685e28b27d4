"""Simulation engine benchmark: fedswarm's backends, a hand-written PyTorch loop, and Flower.

Workloads W1, W2 and W3 are described in ``bench/sim_workloads.py`` (FedAvg, SGD, E = 1,
central test accuracy after the last round only).

Systems: fedswarm's ``vectorized``, ``sequential``, ``process`` (2 workers) and, when
fedswarm has it, ``ray`` backend; ``plain``, a FedAvg loop written by hand in PyTorch on
the same batches; ``flower``, Flower's simulation (W1 and W2 only, ``bench/sim_flower.py``).
Each (workload, system) runs in a fresh child process of this script, whose process
tree's resident memory is sampled every 50 ms from ``/proc`` (Linux; children of Ray
included; ``bench/sim_measure.py``).

    python bench/simulation.py --out /tmp/simulation.md   # everything, ~4.5 min on 2 cores
    python bench/simulation.py --quick                    # smoke run with tiny settings
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python bench/simulation.py`: import `bench.*` too
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402

from bench.sim_measure import OtherLoad, TreeSampler  # noqa: E402
from bench.sim_report import Row, machine, markdown_report, progress, row_json  # noqa: E402
from bench.sim_workloads import (  # noqa: E402
    Measured,
    System,
    run_fedswarm,
    run_plain,
    workload,
)
from fedswarm.run.config import BackendKind, RunConfig, parse_config  # noqa: E402

__all__ = ["main", "run_child", "run_system"]

FLOWER_WORKLOADS = ("w1", "w2")


def run_system(system: System, config: RunConfig) -> Measured:
    if system is System.PLAIN:
        return run_plain(config)
    if system is System.FLOWER:
        from bench.sim_flower import run_flower  # imports Flower only where it runs

        return run_flower(config)
    raw = config.model_dump(mode="json")
    raw["simulation"]["backend"] = system.value
    return run_fedswarm(parse_config(raw, f"backend {system.value}"))


def skip_reason(name: str, system: System) -> str | None:
    """Why ``system`` does not run ``name`` here, or None when it does."""
    if system is System.FLOWER:
        if name not in FLOWER_WORKLOADS:
            return "not run: Flower runs W1 and W2 only"
        try:
            importlib.metadata.version("flwr")
        except importlib.metadata.PackageNotFoundError:
            return 'skipped: flwr is not installed (pip install -e ".[bench]")'
    if system is System.RAY and "ray" not in {k.value for k in BackendKind}:
        return "skipped: fedswarm's config has no 'ray' backend"
    return None


def run_child(name: str, system: System, quick: bool, timeout: float, logs: Path) -> Row:
    """Run one (workload, system) in a fresh process, sampling its tree's memory.

    The child runs as ``python -m bench.simulation`` from the repository root, with the
    root on ``PYTHONPATH``, so that it and the processes it starts (workers, Ray's) can
    import ``bench``.
    """
    if (why := skip_reason(name, system)) is not None:
        return Row(name, system, None, status=why)
    result = logs / f"{name}-{system.value}.json"
    log = logs / f"{name}-{system.value}.log"
    argv = [sys.executable, "-m", "bench.simulation", "--child", system.value]
    argv += ["--workloads", name, "--result", str(result)] + (["--quick"] if quick else [])
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    start, load = time.perf_counter(), OtherLoad()
    with log.open("w") as out:
        child = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": path},
        )
        sampler = TreeSampler(child.pid)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child's own session: its tree only
            child.wait()
            code = None
        sampler.stop()
    wall, peak = time.perf_counter() - start, sampler.peak_rss
    other = load.seconds(sampler) / wall
    if code != 0:
        status = f"timed out after {timeout:.0f} s" if code is None else f"failed (exit {code})"
        tail = log.read_text(errors="replace").splitlines()[-3:]
        why = f"{status}: {' / '.join(tail)}"[:300]
        return Row(name, system, None, wall, peak, other, why)
    raw = json.loads(result.read_text())
    measured = Measured(
        tuple(raw["round_seconds"]), raw["clients_trained"], raw["accuracy"], raw["note"]
    )
    return Row(name, system, measured, wall, peak, other)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--workloads", default="w1,w2,w3", help="comma-separated: w1,w2,w3")
    p.add_argument(
        "--systems",
        default=",".join(s.value for s in System),
        help="comma-separated: " + ",".join(s.value for s in System),
    )
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    p.add_argument("--out", type=Path, help="write the report to OUT and the JSON beside it")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per child run")
    p.add_argument("--child", choices=[s.value for s in System], help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p


def _split(text: str, allowed: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if bad := [t for t in items if t not in allowed]:
        parser.error(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = _split(args.workloads, ("w1", "w2", "w3"), parser)
    if args.child is not None:  # one measured run, in this fresh process
        measured = run_system(System(args.child), workload(names[0], args.quick))
        args.result.write_text(json.dumps(asdict(measured)), encoding="utf-8")
        return 0
    systems = [System(s) for s in _split(args.systems, [s.value for s in System], parser)]
    rows: list[Row] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedswarm-bench-") as tmp:
        for name in names:
            for system in systems:
                print(f"{name} {system.value} ...", flush=True)
                rows.append(row := run_child(name, system, args.quick, args.timeout, Path(tmp)))
                print(f"  {row.status}" + (progress(row) if row.measured else ""), flush=True)
    command = "python bench/simulation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = markdown_report(rows, command.strip(), machine())
    print(report)
    print(f"total {time.perf_counter() - start:.0f}s", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        payload = {"machine": machine(), "rows": [row_json(r) for r in rows]}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
