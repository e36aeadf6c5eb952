"""``GET /api/feeds``: every feed with its health (status, last success, last error, items in
the last day, next poll), as `storywatch feeds list --json` shows it. Needs an API token.
``/feeds``: the dashboard's view of it (static/feeds.html; its data comes from the API)."""

from __future__ import annotations

import time
from typing import Protocol

import faust
from faust.web import Request, Response, View

from streams.feeds.health import feed_health
from streams.feeds.model import FeedDef
from streams.feeds.state import FeedState
from streams.feeds.store import StoreNotReady
from streams.web.http import ApiTokens, HttpError, json_view
from streams.web.pages import _serve

__all__ = ["register_feed_views"]


class FeedSource(Protocol):
    async def ready(self) -> None: ...
    def feed_defs(self) -> list[FeedDef]: ...
    def all_states(self) -> dict[str, FeedState]: ...


def register_feed_views(app: faust.App, source: FeedSource, tokens: ApiTokens) -> None:
    """Add ``/api/feeds`` and the ``/feeds`` page."""

    @app.page("/feeds")
    class FeedsPage(View):
        @json_view
        async def get(self, request: Request) -> Response:
            return _serve(self, "feeds.html")

    @app.page("/api/feeds")
    class Feeds(View):
        @json_view
        async def get(self, request: Request) -> Response:
            tokens.owner(request)  # feeds are the deployment's, not an owner's: any token
            try:
                await source.ready()
            except StoreNotReady as exc:
                raise HttpError(503, str(exc)) from None
            now = time.time()
            states = source.all_states()
            rows = [
                feed_health(feed, states.get(feed.id), now)
                for feed in sorted(source.feed_defs(), key=lambda f: ((f.name or ""), f.url))
            ]
            return self.json({"feeds": rows, "count": len(rows)})
