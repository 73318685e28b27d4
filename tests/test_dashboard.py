"""The dashboard without a browser: ``/metrics`` scraped while a run plays and after it,
the snapshot's panels (epsilon, flags, versions), HTTPS with the federation's PKI, the
progress bar, and the errors a user meets (no run there, a taken port, an open address).

The page itself is driven by headless Chromium in tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import io
import json
import re
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from fedswarm.cli import app as cli_app
from fedswarm.dashboard.app import create_app
from fedswarm.dashboard.commands import dashboard_options
from fedswarm.dashboard.metrics import registry_for
from fedswarm.dashboard.progress import round_bar
from fedswarm.dashboard.server import DashboardError, DashboardServer, Listen
from fedswarm.dashboard.snapshot import LiveFeed, RunSource, RunSourceError, Snapshot
from fedswarm.reports import RoundRecord, RoundReport
from fedswarm.run.config import RunConfig, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.security.pki import Role, init_ca, issue

SMALL = """
seed = 7
rounds = 4
[data]
name = "digits"
num_clients = 4
[model]
hidden = [8]
[client]
steps = 2
batch_size = 16
[strategy]
name = "fedavg"
fraction = 0.5
[evaluation]
every = 2
"""
LOOPBACK_ANY_PORT = Listen("127.0.0.1", 0)


def small_config() -> RunConfig:
    return loads_config(SMALL, "dashboard test config")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dashboard") / "run"
    simulate(small_config(), out)
    return out


def scrape(text: str) -> dict[str, float]:
    """``/metrics`` text -> {sample name with labels: value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def test_metrics_count_the_rounds_while_the_run_plays(tmp_path: Path) -> None:
    feed, seen = LiveFeed(), {}
    app = create_app(RunSource(tmp_path / "run", small_config()), feed)
    with DashboardServer(app, LOOPBACK_ANY_PORT) as server:

        def on_round(report: RoundReport) -> None:
            feed.publish(report)
            seen[report.round] = scrape(get(f"{server.url}metrics"))

        simulate(small_config(), tmp_path / "run", on_round)
    assert [s["fedswarm_rounds_completed_total"] for s in seen.values()] == [1, 2, 3, 4]
    last = seen[4]
    assert last["fedswarm_round_seconds_count"] == 4
    registry = RunSource(tmp_path / "run").snapshot().clients
    assert last["fedswarm_participants"] == len(registry) >= 2  # 2 of 4 sampled a round
    assert last["fedswarm_failures_total{kind=refusal}"] == 0
    assert 0 < last["fedswarm_eval_accuracy"] <= 1
    assert "fedswarm_epsilon" not in last  # no differential privacy in this run


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def test_a_finished_run_is_served_from_its_store(finished_run: Path) -> None:
    with DashboardServer(create_app(RunSource.finished(finished_run)), LOOPBACK_ANY_PORT) as s:
        state = json.loads(get(f"{s.url}api/state"))
        metrics = scrape(get(f"{s.url}metrics"))
        page, script = get(s.url), get(f"{s.url}static/dashboard.js")
    assert state["run"] == {
        "title": "fedavg on digits (run)", "rounds_total": 4, "rounds_done": 4,
        "finished": True, "live": False,
    }  # fmt: skip
    assert [r["round"] for r in state["rounds"]] == [1, 2, 3, 4]
    assert [v["round"] for v in state["versions"]] == [0, 1, 2, 3, 4]
    assert state["versions"][1]["parent"] == state["versions"][0]["sha256"]
    assert sum(p["updates"] for p in state["participants"]) == 4 * 2
    assert metrics["fedswarm_rounds_completed_total"] == 4
    assert "static/dashboard.js" in page
    assert "http" not in page.replace('href="metrics"', "")  # nothing from elsewhere
    assert "function drawChart" in script


def test_the_event_stream_sends_the_snapshot(finished_run: Path) -> None:
    app = create_app(RunSource.finished(finished_run))
    with (
        DashboardServer(app, LOOPBACK_ANY_PORT) as server,
        urllib.request.urlopen(f"{server.url}events", timeout=10) as stream,
    ):
        lines = [stream.readline().decode().strip() for _ in range(2)]
    assert lines[0] == "event: snapshot"
    assert json.loads(lines[1].removeprefix("data: "))["run"]["rounds_done"] == 4


def test_epsilon_flags_and_failures_are_shown_when_present() -> None:
    record = RoundRecord(
        round=1, train_loss=0.5, num_clients=3, num_failures=1, update_norm=1.0, seconds=0.2,
        metrics={"privacy/epsilon": 1.25, "drift/flagged": 2.0, "robust/score": 0.1},
    )  # fmt: skip
    snap = Snapshot("t", 3, records=(record,))
    row = snap.to_json(live=True)["rounds"][0]
    assert row["epsilon"] == 1.25
    assert row["flags"] == {"drift/flagged": 2.0}  # only anomaly/ and drift/ keys are flags
    metrics = scrape(generate_latest(registry_for(lambda: snap)).decode())
    assert metrics["fedswarm_epsilon"] == 1.25
    assert metrics["fedswarm_round_seconds_bucket{le=0.25}"] == 1
    assert metrics["fedswarm_round_seconds_bucket{le=0.1}"] == 0


def test_a_directory_that_holds_no_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunSourceError, match=r"holds no fedswarm run \(no config.toml or state"):
        RunSource.finished(tmp_path)
    with pytest.raises(RunSourceError, match="is not a directory"):
        RunSource.finished(tmp_path / "missing")
    result = CliRunner().invoke(cli_app, ["dashboard", str(tmp_path)])
    assert result.exit_code == 1
    assert "dashboard error: " in result.output
    assert "holds no fedswarm run" in result.output


def test_a_taken_port_is_a_clear_error(finished_run: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = DashboardServer(create_app(RunSource(finished_run)), Listen("127.0.0.1", port))
        with pytest.raises(DashboardError, match=f"127.0.0.1:{port}: the port is taken"):
            server.start()
        (tmp_path / "small.toml").write_text(SMALL)
        args = ["run", str(tmp_path / "small.toml"), "--out", str(tmp_path / "run")]
        result = CliRunner().invoke(cli_app, [*args, "--dashboard-listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "the port is taken" in result.output
    assert not (tmp_path / "run" / "state.sqlite").exists()  # refused before the run began


def test_run_with_a_dashboard_says_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(SMALL)
    args = ["run", str(tmp_path / "small.toml"), "--out", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(cli_app, [*args, "--dashboard-listen", "127.0.0.1:0"])
    assert result.exit_code == 0, result.output
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/ \(metrics: .*/metrics;", result.output)
    assert "round    4  train_loss" in result.output  # the round lines, as without it
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.parametrize(
    ("listen", "message"),
    [("0.0.0.0:8765", "open to the network without TLS"), ("nowhere", "is not HOST:PORT")],
)
def test_open_or_malformed_addresses_are_refused(tmp_path: Path, listen: str, message: str) -> None:
    (tmp_path / "small.toml").write_text(SMALL)
    args = ["run", str(tmp_path / "small.toml"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli_app, [*args, "--dashboard-listen", listen])
    assert result.exit_code == 2
    assert message in result.output


def test_an_exposed_dashboard_is_served_over_https_with_the_pki(
    finished_run: Path, tmp_path: Path
) -> None:
    init_ca(tmp_path / "pki")
    issue(tmp_path / "pki", "coordinator", Role.SERVER)
    options = dashboard_options(True, "0.0.0.0:0", tmp_path / "pki")
    assert options is not None
    assert options.tls is not None
    context = ssl.create_default_context(cafile=tmp_path / "pki" / "ca.crt")
    with DashboardServer(create_app(RunSource(finished_run)), options.listen, options.tls) as s:
        port = s.url.rsplit(":", 1)[1].strip("/")
        assert s.url.startswith("https://")
        url = f"https://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, context=context, timeout=10) as reply:
            assert scrape(reply.read().decode())["fedswarm_rounds_completed_total"] == 4
    with pytest.raises(DashboardError, match=r"ca\.crt is missing"):
        dashboard_options(True, "0.0.0.0:0", tmp_path / "empty")


def _report(round_: int) -> RoundReport:
    return RoundReport(round_, 3, 0, 0.25, 1.0, 0.1)


@pytest.mark.parametrize(("terminal", "quiet", "bar"), [(True, False, True), (True, True, False),
                                                         (False, False, False)])  # fmt: skip
def test_the_progress_bar_is_drawn_on_a_terminal_unless_quiet(
    terminal: bool, quiet: bool, bar: bool
) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=120)
    with round_bar(console, 4, lambda r: f"round {r.round} line", quiet=quiet) as progress:
        progress.on_round(_report(1))
        progress.on_round(_report(2))
        progress.progress.refresh()
    text = out.getvalue()
    assert "round 1 line" in text  # the lines, either way
    assert "round 2 line" in text
    assert ("eta" in text and "loss" in text and "2/4" in text) is bar


def test_the_command_line_loads_no_web_stack_until_a_dashboard_is_asked_for() -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from fedswarm.cli import app\n"
        "result = CliRunner().invoke(app, ['dashboard', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'RUN_DIR' in result.output, result.output\n"
        "print(sorted({'starlette', 'uvicorn', 'torch'} & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_server_refuses_a_bad_dashboard_before_it_listens(tmp_path: Path) -> None:
    init_ca(tmp_path / "pki")
    issue(tmp_path / "pki", "coordinator", Role.SERVER)
    (tmp_path / "small.toml").write_text(SMALL)
    args = ["server", str(tmp_path / "small.toml"), "--pki", str(tmp_path / "pki")]
    args += ["--state", str(tmp_path / "state"), "--listen", "127.0.0.1:0"]
    malformed = CliRunner().invoke(cli_app, [*args, "--dashboard-listen", "nowhere"])
    assert malformed.exit_code == 2
    assert "is not HOST:PORT" in malformed.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(cli_app, [*args, "--dashboard-listen", f"127.0.0.1:{port}"])
    assert busy.exit_code == 1
    assert "the port is taken" in busy.output
    assert not (tmp_path / "state").exists()  # no round loop began
