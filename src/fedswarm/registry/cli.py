"""``fedswarm models``: the model registry of a run directory (list, show, diff, export,
rollback, forget)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["models_app"]

models_app = typer.Typer(
    help="Model versions of a run: lineage, diffs, exports, rollback.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

RunOption = Annotated[Path, typer.Option("--run", help="Run directory (fedswarm run --out).")]
VersionArg = Annotated[str, typer.Argument(help="A round, or 8+ digits of a version's sha256.")]


def _ref(text: str) -> int | str:
    return int(text) if text.isdigit() and len(text) < 8 else text


@contextmanager
def _errors() -> Iterator[None]:
    from fedswarm.run.config import ConfigError
    from fedswarm.run.store import RunStoreError

    try:
        yield
    except (RunStoreError, ConfigError, OSError) as exc:
        err.print(Text.assemble(("models: ", "bold red"), str(exc)), soft_wrap=True)
        raise typer.Exit(1) from None


@models_app.command("list")
def models_list(run: RunOption = Path("runs/latest")) -> None:
    """Every version: round, sha256, parent, contributors, kept and resumable."""
    from fedswarm.registry import lineage, open_run

    with _errors():
        infos = lineage(open_run(run))
    table = Table("round", "version", "parent", "contributors", "kept", "resumable")
    for v in infos:
        table.add_row(
            str(v.round),
            v.sha256[:12],
            (v.parent or "-")[:12],
            str(len(v.contributors)),
            "yes" if v.kept else "pruned",
            "yes" if v.resumable else "no",
        )
    console.print(table)


@models_app.command("show")
def models_show(version: VersionArg, run: RunOption = Path("runs/latest")) -> None:
    """One version's lineage in full."""
    from fedswarm.registry import find, open_run

    with _errors():
        v = find(open_run(run), _ref(version))
    for key, value in [
        ("round", v.round),
        ("version", v.sha256),
        ("parent", v.parent or "-"),
        ("contributors", ", ".join(v.contributors) or "-"),
        ("config_sha256", v.config_sha256),
        ("code_version", v.code_version),
        ("resumable", v.resumable),
    ]:
        console.print(f"{key:>14}  {value}", soft_wrap=True)


@models_app.command("diff")
def models_diff(a: VersionArg, b: VersionArg, run: RunOption = Path("runs/latest")) -> None:
    """Per-tensor L2 distance and largest absolute change from version A to version B."""
    from fedswarm.registry import diff_versions, open_run

    with _errors():
        store = open_run(run)
        changes = diff_versions(store.load_version(_ref(a)), store.load_version(_ref(b)))
    table = Table("tensor", "l2", "max_abs")
    for c in changes:
        table.add_row(c.name, f"{c.l2:.6g}", f"{c.max_abs:.6g}")
    console.print(table)


@models_app.command("export")
def models_export(
    version: VersionArg,
    dest: Annotated[Path, typer.Argument(help="The safetensors file to write.")],
    run: RunOption = Path("runs/latest"),
) -> None:
    """Write a version as a standalone safetensors file with its lineage as metadata."""
    from fedswarm.registry import export_version, open_run

    with _errors():
        info = export_version(open_run(run), _ref(version), dest)
    console.print(f"round {info.round} ({info.sha256[:12]}) -> {dest}")


@models_app.command("rollback")
def models_rollback(version: VersionArg, run: RunOption = Path("runs/latest")) -> None:
    """Make VERSION the run's last round (later rounds discarded, the rollback recorded);
    `fedswarm run` with the same config then continues from it."""
    from fedswarm.registry import open_run

    with _errors():
        discarded = open_run(run).rollback(_ref(version))
    console.print(f"rolled back to {version}; discarded rounds {discarded or 'none'}")


@models_app.command("forget")
def models_forget(
    participant: Annotated[str, typer.Option("--participant", help="The participant's id.")],
    run: RunOption = Path("runs/latest"),
) -> None:
    """Roll back to the last version before PARTICIPANT's first contribution and retrain
    the later rounds without it (a simulation re-runs them); recorded in the run."""
    from fedswarm.registry import forget
    from fedswarm.run.simulate import simulate

    with _errors():
        done = forget(run, participant)
        console.print(
            f"forgot {participant!r}: rolled back to round {done.rolled_back_to}, "
            f"retraining rounds {list(done.discarded)}"
        )
        final = simulate(done.store.config, run)
    console.print(f"retrained to round {final.round} ({final.params.sha256()[:12]})")


@models_app.command("scores")
def models_scores(run: RunOption = Path("runs/latest")) -> None:
    """Per-participant contribution: leave-one-out and GTG-Shapley on each round's kept
    updates ([store] keep_updates), valued by minus the central test loss, summed."""
    from fedswarm.registry import open_run
    from fedswarm.registry.scores import contributions, totals

    with _errors():
        summed = totals(contributions(open_run(run)))
    table = Table("participant", "leave-one-out", "shapley")
    for cid, (loo, phi) in summed.items():
        table.add_row(cid, f"{loo:.6g}", f"{phi:.6g}")
    console.print(table)
