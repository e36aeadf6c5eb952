"""``GET /api/events/stream``: the read model's changes as Server-Sent Events (``story``: a
new story, ``join``: an article joined one, ``alert``: an emerging story), resumable with
``Last-Event-ID`` while the events are in this worker's ring; ``reset`` tells a client that
missed more to reload its list."""

from __future__ import annotations

import asyncio
import json
import re
from typing import cast

import faust
from aiohttp import web
from aiohttp_sse import sse_response
from faust.web import Request, Response, View

from streams.read_model import EventFeed, StoryReadModel
from streams.web.access import ReadAccess
from streams.web.http import json_view, last_event_id
from streams.web.limits import StreamSlots

__all__ = ["register_live_views"]

# Why 2 s: how soon a browser's EventSource reconnects after the stream drops.
_RETRY_MS = 2000
# Why 1 s: how often an idle stream checks that its client is still there.
_IDLE_CHECK_S = 1.0
# Why 256: events written at once to one stream (one socket write of ~100-300 KiB at most).
_MAX_BATCH = 256
# Why 120 s (aiohttp-sse's own send timeout): a client that takes nothing for that long is
# stalled; its stream ends and frees its slot (it reconnects with Last-Event-ID).
_SEND_TIMEOUT_S = 120.0
# The ids this stream sends: "<feed id>-<sequence number>" (streams/read_model/events.py).
# Any feed id is accepted (one of another worker, or of this one before a restart, answers
# `reset`); the sequence number must be one.
_EVENT_ID = re.compile(r"[\w.-]{1,40}-[0-9]{1,19}")


def _gone(request: web.Request) -> bool:
    """The browser closed the connection (found at once, not at the next 15 s ping)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _frames(feed: EventFeed, batch: list[tuple[int, str, str]]) -> bytes:
    """Server-Sent Event frames for ``batch`` (the data is compact JSON: one line each)."""
    return "".join(
        f"id: {feed.event_id(seq)}\r\nevent: {name}\r\ndata: {data}\r\n\r\n"
        for seq, name, data in batch
    ).encode("utf-8")


def register_live_views(
    app: faust.App, model: StoryReadModel, access: ReadAccess, slots: StreamSlots
) -> None:
    @app.page("/api/events/stream")
    class EventStream(View):
        @json_view
        async def get(self, request: Request) -> Response:
            who = access.who(request, query_token=True)
            native = cast(web.Request, request)
            last = last_event_id(request, _EVENT_ID, "'3f9a1c2e-42'")
            feed = model.feed
            with slots.hold("events", who):
                return await self._stream(native, last, feed)

        async def _stream(self, native: web.Request, last: str | None, feed: EventFeed) -> Response:
            async with sse_response(native) as stream:
                client = feed.subscribe(last)
                try:
                    hello = {"feed": feed.feed_id, "caught_up": model.live}
                    await stream.send(json.dumps(hello), event="hello", retry=_RETRY_MS)
                    if client.reset:
                        await stream.send("{}", event="reset")
                    for seq, name, data in client.backlog:
                        await stream.send(data, id=feed.event_id(seq), event=name)
                    # A client that fell behind is closed: it reconnects with Last-Event-ID.
                    # A stopping worker ends its streams at once (browsers reconnect to
                    # another worker or to it when it is back).
                    while (
                        stream.is_connected()
                        and not client.overflowed
                        and not self.app.should_stop
                        and not _gone(native)
                    ):
                        try:
                            first = await asyncio.wait_for(client.queue.get(), _IDLE_CHECK_S)
                        except TimeoutError:
                            continue
                        # Everything queued meanwhile goes out in one write: the feed
                        # publishes a batch of story events at once, and one write per
                        # stream per batch (not per event) is what lets hundreds of open
                        # streams share the event loop with the agents.
                        batch = [first]
                        while len(batch) < _MAX_BATCH and not client.queue.empty():
                            batch.append(client.queue.get_nowait())
                        async with asyncio.timeout(_SEND_TIMEOUT_S):
                            await stream.write(_frames(feed, batch))
                except (ConnectionResetError, TimeoutError):
                    pass  # the browser went away, or stopped taking events
                finally:
                    feed.unsubscribe(client)
            return cast(Response, stream)
