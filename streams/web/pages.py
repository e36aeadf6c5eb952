"""The dashboard's pages and their static files (streams/web/static/: plain HTML, CSS and
JS, no build step). The pages hold no data: it comes from the story API."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

from streams.web.http import HttpError, json_view

__all__ = ["register_pages"]

_STATIC = Path(__file__).with_name("static")
_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}


@lru_cache(maxsize=32)
def _file(name: str) -> bytes | None:
    """A static file by its plain name, read on first use (never at import); None if it is
    not one of the files in static/ (no paths: nothing outside the folder is reachable)."""
    known = {p.name for p in _STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}
    return (_STATIC / name).read_bytes() if name in known else None


def _serve(view: View, name: str) -> Response:
    body = _file(name)
    if body is None:
        raise HttpError(404, f"no file {name!r}: the dashboard starts at /", "name")
    content_type = _TYPES[Path(name).suffix]
    response = cast(web.Response, view.bytes(body, content_type=content_type))
    response.charset = "utf-8"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: a new worker, new files
    response.headers["X-Content-Type-Options"] = "nosniff"
    if content_type == "text/html":  # only our own files run; article text is never markup
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
        )
    return cast(Response, response)


def register_pages(app: faust.App) -> None:
    """``/`` (stories), ``/stories/{id}`` (one story), ``/alerts``, ``/static/{name}``."""

    @app.page("/")
    class Dashboard(View):
        @json_view
        async def get(self, request: Request) -> Response:
            return _serve(self, "dashboard.html")

    @app.page("/stories/{story_id}")
    class StoryPage(View):
        @json_view
        async def get(self, request: Request, story_id: str) -> Response:
            return _serve(self, "story.html")

    @app.page("/alerts")
    class AlertsPage(View):
        @json_view
        async def get(self, request: Request) -> Response:
            return _serve(self, "alerts.html")

    @app.page("/static/{name}")
    class Static(View):
        @json_view
        async def get(self, request: Request, name: str) -> Response:
            return _serve(self, name)
