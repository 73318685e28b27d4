"""The ``fedswarm`` command line: ``demo``, ``run``, ``datasets``, ``server``, ``client``
and the ``ca`` and ``privacy`` groups."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fedswarm.dashboard.options import (
    DashboardFlag,
    DashboardListen,
    PkiOption,
    QuietFlag,
    ServerName,
    View,
    each,
    view,
)
from fedswarm.registry.cli import models_app
from fedswarm.swarm.cli import ledger_app

if TYPE_CHECKING:  # the CLI imports torch, sklearn and matplotlib only when a run starts
    from fedswarm.attacks.config import AttackConfig
    from fedswarm.reports import RoundReport
    from fedswarm.run.config import RunConfig

__all__ = ["app", "main"]

app = typer.Typer(
    help="fedswarm: federated learning where the data never leaves its owner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Run directory (metrics, model, summary, curves). "
        "An existing one with the same config resumes.",
    ),
]


def _line(report: RoundReport) -> str:
    """A round as one printed line (from its record: what metrics.jsonl keeps)."""
    from fedswarm.reports import RoundRecord

    r = RoundRecord.from_report(report)
    parts = [
        f"round {r.round:>4}",
        f"train_loss {r.train_loss:.4f}",
        f"clients {r.num_clients}",
        f"{r.seconds:.2f}s",
    ]
    if r.central:
        parts.append(f"test_acc {r.central.accuracy:.4f}")
    if r.federated:
        parts.append(f"clients_test_acc {r.federated.accuracy:.4f}")
    return "  ".join(parts)


def _execute(config: RunConfig, out: Path, shown: View) -> dict[str, Any]:
    from fedswarm.dashboard.commands import live_dashboard
    from fedswarm.dashboard.progress import round_bar
    from fedswarm.run.simulate import simulate  # torch import deferred: --help stays fast

    what = f"split {config.split.mode.value}" if config.split else config.strategy.name
    console.print(
        f"[bold]fedswarm[/bold] {what} on {config.data.name.value}, "
        f"{config.rounds} rounds, seed {config.seed} -> {out}"
    )
    evaluated = lambda r: _line(r) if r.central or r.federated else None  # noqa: E731
    with (
        live_dashboard(shown.dashboard, out, config, console.print) as publish,
        round_bar(console, config.rounds, evaluated, quiet=shown.quiet) as bar,
    ):
        simulate(config, out, each(bar.on_round, publish), log=bar.log)
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    _print_summary(summary, out)
    return summary


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    table = Table(title="result", show_header=False)
    for key in ("eval_accuracy", "eval_loss", "fed_eval_accuracy", "rounds", "seconds"):
        value = summary.get(key)
        if value is not None:
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    if "model_sha256" in summary:  # whole on one line, at any width: runs are compared by it
        console.print(f"model_sha256 {summary['model_sha256']}", soft_wrap=True, highlight=False)
    console.print(
        f"run directory: {out} (metrics.jsonl, summary.json, model.safetensors, "
        "config.toml, curves.png; state.sqlite and versions/: every round's model)"
    )


def _fail(what: str, exc: Exception | str, code: int) -> typer.Exit:
    """Print ``exc`` whole (no markup, no wrapping inside commands) and the exit to raise."""
    err.print(Text.assemble((f"{what}: ", "bold red"), str(exc)), soft_wrap=True)
    return typer.Exit(code)


def _guarded(config: RunConfig, out: Path, shown: View) -> None:
    from fedswarm.dashboard.server import DashboardError
    from fedswarm.data.errors import DatasetNotInstalledError
    from fedswarm.run.config import ConfigError
    from fedswarm.run.store import RunStoreError
    from fedswarm.transport.base import ClientError

    try:
        _execute(config, out, shown)
    except DashboardError as exc:
        raise _fail("dashboard error", exc, 1) from None
    except ConfigError as exc:  # valid, but not on this machine (e.g. cuda without a GPU)
        raise _fail("config error", exc, 2) from None
    except DatasetNotInstalledError as exc:
        raise _fail("dataset missing", exc, 1) from None
    except (ClientError, RunStoreError) as exc:
        raise _fail("run failed", exc, 1) from None


@app.command()
def demo(
    out: OutOption = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Override the number of rounds.")
    ] = None,
) -> None:
    """Embedded default: digits, 20 clients, Dirichlet(0.5) label skew, FedAvg."""
    from fedswarm.run.config import loads_config, parse_config, raw_config

    raw = (files("fedswarm") / "configs" / "demo.toml").read_text()
    config = loads_config(raw, "demo config")
    if rounds is not None:  # re-validated, not patched in
        config = parse_config({**raw_config(config), "rounds": rounds})
    _guarded(config, out or Path("runs/demo"), View())


class Device(enum.Enum):
    """The CLI's view of ``fedswarm.run.config.DeviceKind`` (kept equal by a test), so that
    parsing the command line does not import pydantic."""

    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"


@app.command()
def run(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG.toml", help="Run configuration (TOML).")
    ],
    out: OutOption = None,
    device: Annotated[
        Device | None,
        typer.Option(help="Where participants train: overrides simulation.device."),
    ] = None,
    quiet: QuietFlag = False,
    dashboard: DashboardFlag = False,
    dashboard_listen: DashboardListen = None,
    pki: PkiOption = None,
    name: ServerName = None,
) -> None:
    """Run any configured simulation from a run configuration (TOML) file.

    The README's config reference lists every key; unknown keys are errors.
    """
    from fedswarm.run.config import ConfigError, load_config, parse_config, raw_config

    with _dashboard_errors(2):
        shown = view(quiet, dashboard, dashboard_listen, pki, name)
    try:
        config = load_config(config_path)
        if device is not None:  # re-validated, not patched in
            raw = raw_config(config)
            raw["simulation"]["device"] = device.value
            config = parse_config(raw, f"{config_path} with --device {device.value}")
    except ConfigError as exc:
        raise _fail("config error", exc, 2) from None
    _guarded(config, out or Path("runs") / config_path.stem, shown)


@app.command()
def datasets() -> None:
    """List the datasets and whether each is installed (and how to install it)."""
    from fedswarm.data.errors import DatasetNotInstalledError
    from fedswarm.data.registry import DatasetName, DataSpec, load_dataset

    table = Table("dataset", "status")
    for name in DatasetName:
        try:
            ds = load_dataset(DataSpec(name, num_clients=2 if name.value != "heart" else None))
            table.add_row(name.value, f"ok: {ds.num_classes} classes, input {ds.input_shape}")
        except DatasetNotInstalledError as exc:
            table.add_row(name.value, Text(str(exc), style="yellow"))
    console.print(table)


@app.command("dashboard")
def dashboard_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run's directory.")],
    listen: Annotated[str, typer.Option(metavar="HOST:PORT", help="Where to serve it.")] = (
        "127.0.0.1:8765"
    ),
    pki: PkiOption = None,
    name: ServerName = None,
) -> None:
    """Serve the web dashboard of a run directory (finished, or still being written)."""
    from fedswarm.dashboard.commands import serve_finished

    with _dashboard_errors(2):
        options = view(False, True, listen, pki, name).dashboard
    assert options is not None  # asked for
    with _dashboard_errors(1):
        serve_finished(run_dir, options, console.print)


@contextmanager
def _dashboard_errors(code: int) -> Iterator[None]:
    from fedswarm.dashboard.server import DashboardError
    from fedswarm.dashboard.snapshot import RunSourceError

    try:
        yield
    except (DashboardError, RunSourceError) as exc:
        raise _fail("dashboard error", exc, code) from None


def _deploy_logging() -> None:
    from fedswarm.dashboard.progress import CurrentStderr  # log lines print above the bar

    logging.basicConfig(
        stream=CurrentStderr(),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )


@app.command()
def server(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG.toml", help="Run configuration (TOML).")
    ],
    pki: Annotated[Path, typer.Option(help="Directory with ca.crt, ca.crl, nodes/NAME.*")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "0.0.0.0:8443",
    state: Annotated[
        Path, typer.Option(help="State directory; a restart with the same one resumes.")
    ] = Path("state"),
    name: Annotated[
        str | None, typer.Option(help="The coordinator's certificate (default: the only one).")
    ] = None,
    quiet: QuietFlag = False,
    dashboard: DashboardFlag = False,
    dashboard_listen: DashboardListen = None,
) -> None:
    """Coordinate a federation across machines: participants dial in with mutual TLS.

    The dashboard, when exposed beyond loopback, is served over HTTPS with --name's
    certificate."""
    from fedswarm.run.config import ConfigError, load_config

    with _dashboard_errors(2):
        shown = view(quiet, dashboard, dashboard_listen, pki, name, https_on_loopback=False)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _fail("config error", exc, 2) from None
    from fedswarm.dashboard.commands import live_dashboard
    from fedswarm.dashboard.progress import round_bar
    from fedswarm.dashboard.server import DashboardError
    from fedswarm.deploy.coordinator import Coordinator
    from fedswarm.deploy.node import NodeSetupError, find_node
    from fedswarm.run.store import RunStoreError
    from fedswarm.security.pki import PkiError, Role

    _deploy_logging()
    try:
        node = find_node(pki, Role.SERVER, name)
        with (
            live_dashboard(shown.dashboard, state, config, console.print) as publish,
            round_bar(console, config.rounds, _line, quiet=shown.quiet) as bar,
        ):
            on_round = each(bar.on_round, publish)
            summary = Coordinator(config, node, pki, state, on_round=on_round).run(listen)
    except DashboardError as exc:
        raise _fail("dashboard error", exc, 1) from None
    except (NodeSetupError, PkiError, RunStoreError, ValueError, OSError) as exc:
        raise _fail("server error", exc, 1) from None
    _print_summary(summary, state)


def _attack(kind: str, options: list[str]) -> AttackConfig:
    """``--attack KIND --attack-option KEY=VALUE ...`` as an ``[attack]`` table."""
    import tomllib

    from fedswarm.attacks.config import parse_attack

    table: dict[str, object] = {"kind": kind}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ValueError(f"--attack-option {option!r}: expected KEY=VALUE")
        try:
            table[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            raise ValueError(f"--attack-option {option!r}: {value!r} is not a TOML value") from None
    return parse_attack(table)


@app.command()
def peer(
    config_path: Annotated[Path, typer.Argument(help="Run config with a [swarm] table.")],
    pki: Annotated[Path, typer.Option(help="Directory with ca.crt, ca.crl, nodes/NAME.key|crt")],
    name: Annotated[str, typer.Option(help="This peer's certificate name (role peer).")],
    listen: Annotated[str, typer.Option(help="HOST:PORT (etcd client; PORT+1 etcd, +2 blobs).")],
    peers: Annotated[str, typer.Option(help="The other peers' --listen, comma-separated.")],
    data: Annotated[str, typer.Option(help="The client id of the config's dataset it trains.")],
    out: Annotated[Path, typer.Option(help="Its folder: etcd data, blobs, ledger, model.")],
) -> None:
    """Be one peer of a swarm: no server; a replicated, signed ledger; local merges."""
    from fedswarm.deploy.peer import PeerOptions, run_peer_process
    from fedswarm.run.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _fail("config error", exc, 2) from None
    _deploy_logging()
    others = [p for p in peers.split(",") if p]
    try:
        final = run_peer_process(config, PeerOptions(pki, name, listen, others, data, out))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (ValueError, OSError, RuntimeError) as exc:
        raise _fail("peer error", exc, 1) from None
    console.print(f"{name}: round {final.round}, model {final.params.sha256()}")


@app.command()
def client(
    server: Annotated[str, typer.Option(help="The coordinator's HOST:PORT.")],
    pki: Annotated[Path, typer.Option(help="Directory with ca.crt and nodes/NAME.key|crt")],
    name: Annotated[str, typer.Option(help="This participant's certificate name.")],
    data: Annotated[
        str,
        typer.Option(
            help="'partition' (its share of the config's dataset) or a .npz file "
            "(x_train, y_train[, x_test, y_test])."
        ),
    ] = "partition",
    attack: Annotated[
        str | None,
        typer.Option(
            help="TEST TOOL: behave as a Byzantine participant of this kind (label_flip, "
            "backdoor, sign_flip, gaussian, scaling), to test your own defences.",
            rich_help_panel="Testing defences",
        ),
    ] = None,
    attack_option: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE of the attack (a TOML value), e.g. scale=10.0; repeatable.",
            rich_help_panel="Testing defences",
        ),
    ] = None,
) -> None:
    """Take part in a federation: dial the coordinator and train on local data."""
    from fedswarm.data.errors import DatasetNotInstalledError
    from fedswarm.deploy.node import (
        PARTICIPANT_KINDS,
        NodeSetupError,
        certificate_problem,
        find_node,
        node_binding,
        participant_factory,
        tls_identity,
    )
    from fedswarm.run.build import run_codec
    from fedswarm.run.config import ConfigError
    from fedswarm.security.pki import Role
    from fedswarm.transport.grpc.client import HandshakeFailed, ParticipantRefused, run_participant

    _deploy_logging()
    try:
        poison = _attack(attack, attack_option or []) if attack else None
        if poison is not None:
            console.print(f"[bold red]{name}: TEST TOOL - sending {attack} updates[/]")
        node = find_node(pki, Role.CLIENT, name)
        factory = participant_factory(
            name, data, own_process=True, attack=poison, binding=node_binding(node)
        )
        # Any run's messages: the participant learns the run's protocol only once connected.
        run_participant(
            server, tls_identity(node), factory, codec=run_codec(), kinds=PARTICIPANT_KINDS
        )
    except HandshakeFailed as exc:  # the coordinator cannot say why: look at our own
        problem = certificate_problem(node)
        why = f"{exc}; and here: {problem}" if problem else str(exc)
        raise _fail("TLS handshake failed", why, 3) from None
    except ParticipantRefused as exc:
        raise _fail("refused by the coordinator", exc, 3) from None
    except (NodeSetupError, ConfigError, DatasetNotInstalledError, OSError, ValueError) as exc:
        raise _fail("client error", exc, 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    console.print(f"{name}: the run is over")


ca_app = typer.Typer(
    help="Federation PKI: a CA and node certificates for mutual TLS.", no_args_is_help=True
)
app.add_typer(ca_app, name="ca")
app.add_typer(ledger_app, name="ledger")
app.add_typer(models_app, name="models")

CaDirOption = Annotated[
    Path, typer.Option("--dir", help="CA directory (made by `fedswarm ca init`).")
]
DaysOption = Annotated[int, typer.Option(min=1, help="Validity in days.")]


@contextmanager
def _ca_errors() -> Iterator[None]:
    from fedswarm.security.pki import PkiError

    try:
        yield
    except (PkiError, OSError) as exc:
        raise _fail("ca error", exc, 1) from None


@ca_app.command("init")
def ca_init(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Directory for the new CA.")
    ] = Path("pki"),
    name: Annotated[str, typer.Option(help="The CA's common name.")] = "fedswarm-ca",
    days: DaysOption = 3650,
) -> None:
    """Create a federation CA: ca.key (0600), ca.crt, an empty ca.crl and index.json."""
    from fedswarm.security.pki import init_ca

    with _ca_errors():
        paths = init_ca(directory, name, days)
    console.print(
        f"CA {name!r} in {paths.dir}: keep {paths.key.name} private; give every node "
        f"{paths.cert.name}, and servers {paths.crl.name}"
    )


class NodeRole(enum.Enum):
    """The CLI's view of ``fedswarm.security.pki.Role`` (kept equal by a test), so that
    parsing the command line does not import the deployment stack."""

    SERVER = "server"
    CLIENT = "client"
    PEER = "peer"


@ca_app.command("issue")
def ca_issue(
    name: Annotated[str, typer.Argument(help="Node identity (the certificate's common name).")],
    role: Annotated[NodeRole, typer.Option(help="The node's role.")],
    directory: CaDirOption = Path("pki"),
    days: DaysOption = 365,
    host: Annotated[
        list[str] | None,
        typer.Option(help="Servers, peers: another DNS name or IP they are dialled at."),
    ] = None,
) -> None:
    """Issue a node a key (0600) and a certificate signed by the CA, under DIR/nodes/."""
    from fedswarm.security.pki import Role, issue

    with _ca_errors():
        node = issue(directory, name, Role(role.value), days, host or ())
    console.print(
        f"{node.role} {node.name!r}: {node.key} (private), {node.cert}, with {node.ca_cert}"
    )


@ca_app.command("revoke")
def ca_revoke(name: str, directory: CaDirOption = Path("pki")) -> None:
    """Revoke a node's certificate and re-sign the CRL (servers must reload ca.crl)."""
    from fedswarm.security.pki import revoke

    with _ca_errors():
        revoke(directory, name)
    console.print(f"revoked {name!r}; give servers the new {directory / 'ca.crl'}")


@ca_app.command("list")
def ca_list(directory: CaDirOption = Path("pki")) -> None:
    """List the certificates the CA has issued, revoked and expired ones included."""
    import datetime as dt

    from fedswarm.security.pki import list_certificates

    with _ca_errors():
        entries = list_certificates(directory)
    now = dt.datetime.now(dt.UTC)
    table = Table("name", "role", "serial", "expires", "status")
    for e in entries:
        status = "revoked" if e.revoked else "expired" if e.not_after < now else "active"
        table.add_row(e.name, e.role.value, f"{e.serial:x}"[:16], f"{e.not_after:%Y-%m-%d}", status)
    console.print(table)


privacy_app = typer.Typer(
    help="Differential privacy: calibrate a run's noise.", no_args_is_help=True
)
app.add_typer(privacy_app, name="privacy")


class AccountantChoice(enum.Enum):  # the CLI imports no accountant until a command runs
    RDP = "rdp"
    PLD = "pld"


@privacy_app.command("calibrate")
def privacy_calibrate(
    epsilon: Annotated[float, typer.Option(min=0, help="Target epsilon.")],
    rate: Annotated[float, typer.Option(min=0, max=1, help="q: [strategy] fraction.")],
    rounds: Annotated[int, typer.Option(min=1, help="Rounds the run will execute.")],
    delta: Annotated[float, typer.Option(min=0, max=1, help="Target delta.")] = 1e-5,
    accountant: Annotated[AccountantChoice, typer.Option()] = AccountantChoice.RDP,
) -> None:
    """The noise multiplier for which ROUNDS Poisson-subsampled Gaussian rounds at rate q
    spend at most EPSILON at DELTA ([privacy] noise_multiplier)."""
    from fedswarm.privacy.accountant import AccountantKind, Event, Ledger, calibrate_noise
    from fedswarm.privacy.accountant import epsilon as spent

    kind = AccountantKind(accountant.value)
    try:
        z = calibrate_noise(epsilon, delta, rate, rounds, kind)
    except ValueError as exc:
        raise _fail("calibrate error", exc, 2) from None
    ledger = Ledger.empty().record([Event(rate, z)] * rounds)
    console.print(f"noise_multiplier = {z:.4f}")
    console.print(
        f"epsilon {spent(ledger, delta, kind):.4f} at delta {delta:g} after {rounds} rounds "
        f"at q = {rate:g} ({kind.value})"
    )


def main() -> None:
    app()
