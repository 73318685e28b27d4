"""The GPU benchmark's report: its rows, the ratios and the issue's targets, as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ISSUE_VMAP_S", "TARGET_SPEEDUP", "markdown", "ratios"]

# Issue 15's bare-vmap reference figures (s a round, one H200) and speed-up targets.
ISSUE_VMAP_S = {"w3": 0.0087, "m10": 0.30, "m100": 0.51}
TARGET_SPEEDUP = {"w3": 50.0, "m100": 10.0}  # plain loop / fedswarm, at least
VMAP_FACTOR = 2.0  # fedswarm within 2x of the bare vmap


def _cell(value: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _row_cells(row: dict[str, Any]) -> list[str]:
    if row["system"] == "probe" and row["status"] == "ok":
        plain, vmap = row.get("plain_round_s_median"), row.get("vmap_round_s_median")
        seconds = f"plain {_cell(plain)} / vmap {_cell(vmap)}"
        first, acc = "-", f"max diff {_cell(row.get('max_abs_diff'), '{:.1e}')}"
    else:
        seconds = _cell(row.get("round_s"))
        first = _cell((row.get("round_seconds") or [None])[0])
        acc = _cell(row.get("accuracy"))
    peak = _cell(row.get("peak_gib"), "{:.2f}")
    return [row["workload"], row["system"], seconds, first, acc, peak]


def _get(rows: Sequence[dict[str, Any]], name: str, system: str, key: str) -> float | None:
    for row in rows:
        if row["workload"] == name and row["system"] == system and row["status"] == "ok":
            value = row.get(key)
            return float(value) if value is not None else None
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(rows: Sequence[dict[str, Any]], name: str) -> dict[str, float | None]:
    """Per workload: speed-ups over the plain loops, and fedswarm against the bare vmap."""
    fed = _get(rows, name, "vectorized", "round_s")
    plain = _get(rows, name, "plain", "round_s")
    probe_plain = _get(rows, name, "probe", "plain_round_s_median")
    probe_vmap = _get(rows, name, "probe", "vmap_round_s_median")
    fp32, bf16 = (_get(rows, name, s, "accuracy") for s in ("vectorized", "vectorized-bf16"))
    return {
        "plain / vectorized": _ratio(plain, fed),
        "probe plain / vectorized": _ratio(probe_plain, fed),
        "vectorized / probe vmap": _ratio(fed, probe_vmap),
        "vectorized / issue vmap": _ratio(fed, ISSUE_VMAP_S[name]),
        "probe plain / probe vmap": _ratio(probe_plain, probe_vmap),
        "sequential / plain": _ratio(_get(rows, name, "sequential", "round_s"), plain),
        "bf16 / fp32 round time": _ratio(_get(rows, name, "vectorized-bf16", "round_s"), fed),
        "bf16 acc - fp32 acc": None if fp32 is None or bf16 is None else bf16 - fp32,
    }


def _verdicts(name: str, r: dict[str, float | None]) -> str:
    notes = []
    if name in TARGET_SPEEDUP and r["plain / vectorized"] is not None:
        ok = r["plain / vectorized"] >= TARGET_SPEEDUP[name]
        notes.append(f">= {TARGET_SPEEDUP[name]:.0f}x plain: {'met' if ok else 'missed'}")
    if r["vectorized / probe vmap"] is not None:
        ok = r["vectorized / probe vmap"] <= VMAP_FACTOR
        notes.append(f"within 2x of this run's vmap: {'met' if ok else 'missed'}")
    return "; ".join(notes) or "-"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = ["workload", "system", "s a round (2..R)", "round 1 s", "final acc", "peak GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = _row_cells(row) if row["status"] == "ok" else [row["workload"], row["system"]]
        cells += ["-"] * (len(head) - len(cells))
        if row["status"] != "ok":
            cells[-1] = row["status"]
        lines.append("| " + " | ".join(cells) + " |")
    names = list(dict.fromkeys(row["workload"] for row in rows))
    keys = list(ratios(rows, names[0])) if names else []
    lines += ["", "| workload | " + " | ".join(keys) + " | targets |"]
    lines.append("|" + "---|" * (len(keys) + 2))
    for name in names:
        r = ratios(rows, name)
        cells = [_cell(v, "{:+.4f}" if "acc" in k else "{:.2f}") for k, v in r.items()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_verdicts(name, r)} |")
    return "\n".join(lines) + "\n"
