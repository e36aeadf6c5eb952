"""A local HTTP server on 127.0.0.1 (a free port) serving feed files and hostile answers."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

DATA = Path(__file__).resolve().parent / "data" / "feeds"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FeedServer:
    """Serves tests/data/feeds/* under /feeds/NAME, with ETag/Last-Modified and 304s, plus
    routes a test adds. Records every request (path, headers, start and end times)."""

    def __init__(self, data: Path = DATA) -> None:
        self.data = data
        self.app = web.Application()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        self.intervals: list[tuple[float, float]] = []
        self.completed: set[str] = set()
        self.extra: dict[str, Handler] = {}
        self.app.router.add_route("GET", "/{path:.*}", self._dispatch)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FeedServer:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def route(self, path: str, handler: Handler) -> None:
        self.extra[path] = handler

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers)))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        started = time.monotonic()
        try:
            handler = self.extra.get(request.path)
            if handler is not None:
                response = await handler(request)
            else:
                response = self._file(request)
            self.completed.add(request.path)
            return response
        finally:
            self.active -= 1
            self.intervals.append((started, time.monotonic()))

    def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.path.removeprefix("/feeds/")
        path = self.data / name
        if not request.path.startswith("/feeds/") or not path.is_file():
            raise web.HTTPNotFound()
        body = path.read_bytes()
        etag = f'"{abs(hash(body))}"'
        modified = "Mon, 07 Dec 2026 10:00:00 GMT"
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag, "Last-Modified": modified})
        kind = "application/feed+json" if name.endswith(".json") else "application/xml"
        if name.endswith(".html"):
            kind = "text/html"
        headers = {"ETag": etag, "Last-Modified": modified}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = gzip.compress(body)
        return web.Response(body=body, content_type=kind, headers=headers)


async def stream_bytes(request: web.Request, total: int, *, declare: bool) -> web.StreamResponse:
    """Answer ``total`` bytes of a feed-looking body in 1 MiB writes."""
    response = web.StreamResponse(headers={"Content-Type": "application/xml"})
    if declare:
        response.content_length = total
    await response.prepare(request)
    chunk = b"<!-- " + b"x" * (1024 * 1024 - 10) + b" -->\n"
    sent = 0
    while sent < total:
        await response.write(chunk)
        sent += len(chunk)
    await response.write_eof()
    return response


async def stall(request: web.Request, seconds: float = 30.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/xml"})
    await response.prepare(request)
    await response.write(b"<?xml version='1.0'?><rss version='2.0'><channel>")
    await asyncio.sleep(seconds)
    return response


class ThreadedFeedServer:
    """A FeedServer on its own event loop in a thread, for tests whose worker is a process."""

    def __init__(self, data: Path = DATA) -> None:
        import threading

        self.server = FeedServer(data)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
