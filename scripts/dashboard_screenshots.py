"""Regenerates the README's dashboard screenshots (docs/dashboard*.png): a short run of the
demo with participants dropping out, then its dashboard in headless Chromium.

    PYTHONPATH=src python scripts/dashboard_screenshots.py   # needs chromium and playwright
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from playwright.sync_api import sync_playwright

from fedswarm.dashboard.app import create_app
from fedswarm.dashboard.server import DashboardServer, Listen
from fedswarm.dashboard.snapshot import RunSource
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    text = (files("fedswarm") / "configs" / "demo.toml").read_text()
    text = text.replace("rounds = 40", "rounds = 30") + "\n[simulation]\ndropout = 0.1\n"
    config = loads_config(text, "screenshot config")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo-dropout"
        simulate(config, out)
        app = create_app(RunSource.finished(out))
        with DashboardServer(app, Listen("127.0.0.1", 0)) as server, sync_playwright() as p:
            chromium = shutil.which("chromium")
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(server.url)
            page.wait_for_selector("#status.finished")
            page.screenshot(path=str(DOCS / "dashboard.png"))
            page.locator(".tables").screenshot(path=str(DOCS / "dashboard-tables.png"))
            browser.close()


if __name__ == "__main__":
    main()
