"""``/livez`` (the process answers) and ``/healthz`` (ready: tables recovered, consuming).

A container's HEALTHCHECK and a load balancer ask ``/healthz``: 200 only once Faust finished
recovering the tables from their changelogs and no rebalance or recovery is under way, 503
with the reasons otherwise. ``/livez`` answers 200 while the event loop runs at all.
"""

from __future__ import annotations

from typing import Any, Protocol

import faust
from faust.web import Request, Response, View

__all__ = ["Readiness", "register_health_views"]


class _Ready(Protocol):
    @property
    def is_ready(self) -> bool: ...


class Readiness:
    """Why the worker is not ready yet (an empty list: it is)."""

    def __init__(self, app: faust.App, *parts: tuple[str, _Ready]) -> None:
        self.app = app
        self.parts = parts  # other things that must be loaded, by name

    def reasons(self) -> list[str]:
        app: Any = self.app
        if app.should_stop or app.crashed:
            return ["the worker is stopping: wait for its restart"]
        if not app.started:
            return ["the worker is starting: wait"]
        found = []
        if not app.tables.recovery.completed.is_set():
            found.append("tables are recovering from their changelogs: wait")
        if app.rebalancing:
            found.append("the consumer group is rebalancing: wait")
        if app.in_recovery:
            found.append("tables are recovering after a rebalance: wait")
        found += [f"{name} not loaded yet: wait" for name, part in self.parts if not part.is_ready]
        return found


def register_health_views(app: faust.App, readiness: Readiness) -> None:
    """Add ``/livez`` and ``/healthz`` (public: they say nothing about the data)."""

    @app.page("/livez")
    class Live(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            reasons = readiness.reasons()
            if reasons:
                return self.json(
                    {"status": "not ready", "error": "; ".join(reasons), "reasons": reasons},
                    status=503,
                )
            return self.json({"status": "ready"})
