"""Watching a run: a live web dashboard with a Prometheus ``/metrics`` endpoint, and the
terminal's progress bar.

The dashboard reads what the run store has (committed rounds, the participant registry, model
versions) and is woken by the round loop through a thread-safe queue, so it never blocks a
round. ``fedswarm run --dashboard``, ``fedswarm server --dashboard`` and ``fedswarm dashboard
RUN_DIR`` all serve the same app from a thread::

    from fedswarm.dashboard.app import create_app
    from fedswarm.dashboard.server import DashboardServer, Listen
    from fedswarm.dashboard.snapshot import LiveFeed, RunSource

    feed = LiveFeed()
    app = create_app(RunSource(out, config), feed)
    with DashboardServer(app, Listen.parse("127.0.0.1:8765")) as server:
        print(server.url)
        simulate(config, out, on_round=feed.publish)

Modules: ``snapshot`` (what is shown, read from the store), ``metrics`` (``/metrics``),
``app`` (the Starlette app), ``server`` (uvicorn in a thread, TLS), ``commands`` (what the
CLI calls), ``options`` (the CLI's flags; imports no web stack), ``progress`` (the terminal's
bar). Nothing is imported here, so that the command line's ``--help`` loads no web stack.
"""

__all__: list[str] = []
