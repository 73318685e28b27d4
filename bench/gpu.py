"""GPU benchmark (issue 15): fedswarm on a GPU against plain PyTorch on the same GPU, in one run.

Workloads W3, M10 and M100 (``bench/gpu_workloads.py``). Systems, in the order they run:

- ``vectorized``, ``vectorized-bf16``: fedswarm's vectorised backend, fp32 and bf16 autocast;
- ``host-floor``: the same with training replaced by its result alone, so what the host's
  side of a round costs (``gpu_workloads.host_only``);
- ``plain``: the FedAvg loop a PyTorch user writes, on fedswarm's data and batches;
- ``probe``: the bare-PyTorch ``gpu_vmap_probe.py``, its plain loop and its all-clients
  ``vmap``, on synthetic data of the same shapes;
- ``sequential``: fedswarm's sequential backend; ``vectorized-tf32`` on request.

fedswarm runs as ``fedswarm run`` does (deterministic kernels, TF32 off); ``plain`` and
``probe`` run with TF32 off too but torch's default, non-deterministic kernels. A round's
time is the median of rounds 2..R (round 1 holds CUDA's and cuDNN's warm-up and the first
copy of the data to the GPU).

    python bench/gpu.py --out /tmp/gpu.json            # on a machine with a CUDA GPU
    python bench/gpu.py --device cpu --quick           # smoke run of the same code, tiny

``--probe`` defaults to ``../shared/tools/gpu_vmap_probe.py`` beside the repository; without
it the probe rows are skipped and the other rows still run.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python bench/gpu.py`: import `bench.*` too
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench.gpu_report import markdown  # noqa: E402
from bench.gpu_workloads import (  # noqa: E402
    WORKLOADS,
    Variant,
    host_only,
    load_probe,
    probe_references,
    run_plain_on,
    workload,
)
from bench.sim_workloads import Measured, run_fedswarm  # noqa: E402
from fedswarm.data.fashion_mnist import ENV_VAR  # noqa: E402
from fedswarm.pytorch.device import CUBLAS_WORKSPACE_CONFIG, cuda_math, resolve_device  # noqa: E402
from fedswarm.run.config import BackendKind  # noqa: E402

__all__ = ["SYSTEMS", "main"]

DEFAULT_PROBE = ROOT.parent / "shared" / "tools" / "gpu_vmap_probe.py"
VARIANTS = {
    "vectorized": Variant(),
    "vectorized-bf16": Variant(precision="bf16"),
    "vectorized-tf32": Variant(tf32=True),
    "sequential": Variant(BackendKind.SEQUENTIAL),
}
SYSTEMS = (
    "vectorized",
    "vectorized-bf16",
    "host-floor",
    "plain",
    "probe",
    "sequential",
    "vectorized-tf32",
)
DEFAULT_SYSTEMS = SYSTEMS[:-1]


def _measured_row(measured: Measured) -> dict[str, Any]:
    seconds = list(measured.round_seconds)
    later = seconds[1:] or seconds
    return {
        "round_seconds": seconds,
        "round_s": statistics.median(later),  # rounds 2..R
        "accuracy": measured.accuracy,
        "clients_trained": measured.clients_trained,
        "note": measured.note,
    }


def run_row(
    name: str, system: str, args: argparse.Namespace, device: torch.device, probe: Any
) -> dict[str, Any]:
    """One (workload, system) measurement; a failure is recorded, not raised."""
    rounds = {"w3": args.rounds_w3, "m10": args.rounds_m10, "m100": args.rounds_m100}[name]
    row: dict[str, Any] = {"workload": name, "system": system, "status": "ok"}
    measure: Callable[[], dict[str, Any]]
    if system in VARIANTS:
        config = workload(name, rounds, str(device), VARIANTS[system], args.quick)
        measure = lambda: _measured_row(run_fedswarm(config))  # noqa: E731
    elif system == "host-floor":
        config = workload(name, rounds, str(device), Variant(), args.quick)

        def measure() -> dict[str, Any]:
            with host_only():
                return _measured_row(run_fedswarm(config))

    elif system == "plain":
        config = workload(name, rounds, str(device), Variant(), args.quick)
        measure = lambda: _measured_row(run_plain_on(config, device))  # noqa: E731
    elif probe is None:
        return row | {"status": f"skipped: no probe at {args.probe}"}
    else:
        reps = min(5, max(2, rounds - 1))  # the probe's plain loop takes 11 s a round on M100
        measure = lambda: probe_references(probe, name, device, reps, args.quick)  # noqa: E731
    # The references run with fedswarm's default arithmetic (TF32 off) and its one thread.
    math = cuda_math(False) if device.type == "cuda" and system in ("plain", "probe") else None
    torch.set_num_threads(1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        with math or nullcontext():
            row |= measure()
    except Exception as exc:
        traceback.print_exc()
        return row | {"status": f"failed: {type(exc).__name__}: {exc}"[:400]}
    row["wall_s"] = time.perf_counter() - start
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS), help=",".join(SYSTEMS))
    p.add_argument("--rounds-w3", type=int, default=5)
    p.add_argument("--rounds-m10", type=int, default=20, help="also the fp32/bf16 accuracy run")
    p.add_argument("--rounds-m100", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    p.add_argument("--probe", type=Path, default=DEFAULT_PROBE, help="gpu_vmap_probe.py")
    p.add_argument("--data-dir", type=Path, help=f"Fashion-MNIST's IDX files (sets {ENV_VAR})")
    p.add_argument("--budget-s", type=float, default=1e9, help="skip rows after this long")
    p.add_argument("--out", type=Path, help="write the rows as JSON (after every row)")
    return p


def _split(text: str, allowed: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if bad := [t for t in items if t not in allowed]:
        parser.error(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names = _split(args.workloads, WORKLOADS, parser)
    systems = _split(args.systems, SYSTEMS, parser)
    # Before any CUDA work: the plain loop's first matmul would fix cuBLAS's workspace.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    if args.data_dir is not None:
        os.environ[ENV_VAR] = str(args.data_dir)
    device = resolve_device(args.device)
    probe = load_probe(args.probe)
    payload: dict[str, Any] = {"machine": machine(device), "argv": sys.argv[1:], "rows": []}
    start = time.perf_counter()
    for name in names:
        for system in systems:
            if time.perf_counter() - start > args.budget_s:
                row = {"workload": name, "system": system, "status": "skipped: --budget-s"}
            else:
                print(f"{name} {system} ...", flush=True)
                row = run_row(name, system, args, device, probe)
            print(f"  {json.dumps(row)}", flush=True)
            payload["rows"].append(row)
            if args.out is not None:
                args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(markdown(payload["rows"]), flush=True)
    print(f"total {time.perf_counter() - start:.0f}s on {payload['machine']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
