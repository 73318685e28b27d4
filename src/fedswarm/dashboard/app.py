"""The dashboard's web app (Starlette): the page, its data, live updates and ``/metrics``.

Routes::

    GET /             the page (static/index.html; its script and charts are served from
                      the package: no CDN, nothing fetched from elsewhere)
    GET /static/...   dashboard.js (charts drawn as SVG by the page itself), dashboard.css
    GET /api/state    the run's snapshot as JSON
    GET /events       server-sent events: a ``snapshot`` event now and after every change
    GET /metrics      Prometheus text format (fedswarm_rounds_completed_total, ...)

One background task (the pump) drains the :class:`LiveFeed` and re-reads the store when a
round was published, or every ``poll_s`` anyway (a run another process is writing); the
store is read in a worker thread, so neither the round loop nor the event loop waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fedswarm.dashboard.metrics import registry_for
from fedswarm.dashboard.snapshot import LiveFeed, RunSource, RunSourceError, Snapshot

__all__ = ["Hub", "create_app"]

_TICK_S = 0.25  # how often the pump drains the feed and each event stream looks for news


@dataclass
class Hub:
    """The latest snapshot, shared by the pump (writer) and the event streams (readers)."""

    source: RunSource
    feed: LiveFeed | None
    poll_s: float = 2.0
    closing: threading.Event = field(default_factory=threading.Event)
    version: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    async def refresh(self) -> None:
        snap: Snapshot = await anyio.to_thread.run_sync(self.source.snapshot)
        state = snap.to_json(live=self.feed is not None)
        if state != self.state:
            self.state, self.version = state, self.version + 1

    async def pump(self) -> None:
        waited = 0.0
        while not self.closing.is_set():
            published = self.feed.drain() if self.feed is not None else []
            if published or waited >= self.poll_s:
                waited = 0.0
                with contextlib.suppress(RunSourceError):  # a store mid-creation: next tick
                    await self.refresh()
            await asyncio.sleep(_TICK_S)
            waited += _TICK_S

    async def stream(self) -> AsyncIterator[dict[str, str]]:
        seen = -1
        while not self.closing.is_set():
            if self.version != seen:
                seen = self.version
                yield {"event": "snapshot", "data": json.dumps(self.state)}
            await asyncio.sleep(_TICK_S)


def create_app(source: RunSource, feed: LiveFeed | None = None, poll_s: float = 2.0) -> Starlette:
    """The dashboard of the run at ``source``; ``feed`` is given for a live run."""
    hub = Hub(source, feed, poll_s)
    registry = registry_for(source.snapshot)
    page = (files("fedswarm.dashboard") / "static" / "index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.refresh()
        task = asyncio.create_task(hub.pump())
        try:
            yield
        finally:
            hub.closing.set()
            task.cancel()

    def index(request: Request) -> Response:
        return HTMLResponse(page)

    def state(request: Request) -> Response:
        return JSONResponse(source.snapshot().to_json(live=feed is not None))

    def events(request: Request) -> Response:
        return EventSourceResponse(hub.stream(), ping=15)

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/events", events),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("fedswarm.dashboard", "static")])),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return app
