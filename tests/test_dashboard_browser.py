"""The dashboard's page in headless Chromium (Playwright, Debian's ``chromium``; `.ci/run`
installs it): a run plays while the page is open, and the page shows the round counter
advancing, a loss curve drawn and the participant table filled, from server-sent events.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from fedswarm.dashboard.commands import DashboardOptions, live_dashboard
from fedswarm.dashboard.server import Listen
from fedswarm.dashboard.snapshot import RunSource
from fedswarm.reports import RoundReport
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROUNDS = 8
CONFIG = f"""
seed = 3
rounds = {ROUNDS}
[data]
name = "digits"
num_clients = 5
[model]
hidden = [8]
[client]
steps = 2
batch_size = 16
[strategy]
name = "fedavg"
fraction = 0.6
[evaluation]
every = 2
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def counter(page: Page) -> int:
    return int(page.inner_text("#round-counter"))


def test_the_page_follows_a_run_as_it_plays(browser: Browser, tmp_path: Path) -> None:
    config, out = loads_config(CONFIG, "browser test"), tmp_path / "run"
    said: list[str] = []
    go_on = threading.Event()
    options = DashboardOptions(Listen("127.0.0.1", 0))  # what `fedswarm run --dashboard` does

    def on_round(report: RoundReport) -> None:
        publish(report)
        if report.round == 2:
            go_on.wait(timeout=60)  # the page must see round 2 before the run goes on
        time.sleep(0.2)

    with live_dashboard(options, out, config, said.append) as publish:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(said[0].split()[1])  # "dashboard: http://127.0.0.1:PORT/ (metrics: ...)"
        run = threading.Thread(target=simulate, args=(config, out, on_round))
        run.start()
        try:
            page.wait_for_function("document.getElementById('round-counter').textContent == '2'")
            go_on.set()
            page.wait_for_function(
                f"document.getElementById('round-counter').textContent == '{ROUNDS}'"
            )
        finally:
            go_on.set()
            run.join(timeout=120)
        page.wait_for_selector("#status.finished")
        loss = page.get_attribute("#chart-loss polyline[data-series='train']", "points")
        rows = page.locator("#participants tbody tr:not(.placeholder)")
        names = rows.locator("td:first-child").all_inner_texts()
        page.screenshot(path=str(tmp_path / "dashboard.png"))
    assert counter(page) == ROUNDS
    assert loss is not None
    assert len(loss.split()) == ROUNDS  # a point per round
    assert names == [c.client_id for c in RunSource(out).snapshot().clients]
    assert len(names) >= 3
    assert errors == []
