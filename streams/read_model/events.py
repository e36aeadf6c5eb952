"""The live feed behind ``GET /api/events/stream``: what the read model applied (new
stories, joins, alerts), numbered, kept in a short ring so a browser that reconnects with
``Last-Event-ID`` gets what it missed."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventFeed", "FeedEvent", "Subscription"]

FeedEvent = tuple[int, str, str]  # (sequence number, event name, JSON data)

# Why 2,000: a browser that reconnects within a few seconds at hundreds of events/s resumes
# without a gap; one gone longer gets a "reset" event and reloads its list.
_RING_EVENTS = 2000
# Why 1,000: events queued for one slow browser before its stream is closed (it reconnects
# with Last-Event-ID and resumes from the ring) instead of holding memory for it.
_CLIENT_QUEUE = 1000


@dataclass(eq=False)
class Subscription:
    """One connected browser: its queue and whether it fell behind."""

    queue: asyncio.Queue[FeedEvent] = field(default_factory=lambda: asyncio.Queue(_CLIENT_QUEUE))
    backlog: list[FeedEvent] = field(default_factory=list)
    reset: bool = False  # its Last-Event-ID is unknown here or too old: reload everything
    overflowed: bool = False


class EventFeed:
    """Numbered events; ids are ``<feed>-<n>``: a feed is one worker process's run, so an id
    from another worker or an earlier run is recognised as unknown (a reset)."""

    def __init__(
        self,
        ring: int = _RING_EVENTS,
        on_clients: Callable[[int], None] | None = None,
    ) -> None:
        self.feed_id = secrets.token_hex(4)
        self._seq = 0
        self._ring: deque[FeedEvent] = deque(maxlen=ring)
        self._clients: set[Subscription] = set()
        self._on_clients = on_clients

    def event_id(self, seq: int) -> str:
        return f"{self.feed_id}-{seq}"

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self._seq += 1
        event = (self._seq, name, json.dumps(data, separators=(",", ":")))
        self._ring.append(event)
        for client in self._clients:
            if client.overflowed:
                continue
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                client.overflowed = True

    def subscribe(self, last_event_id: str | None) -> Subscription:
        """A new client; with ``last_event_id``, the ring's events after it (or a reset)."""
        client = Subscription()
        if last_event_id:
            feed, _, number = last_event_id.rpartition("-")
            after = int(number) if number.isdigit() else -1
            oldest = self._ring[0][0] if self._ring else self._seq + 1
            if feed != self.feed_id or after < oldest - 1 or after > self._seq:
                client.reset = True
            else:
                client.backlog = [e for e in self._ring if e[0] > after]
        self._clients.add(client)
        self._changed()
        return client

    def unsubscribe(self, client: Subscription) -> None:
        self._clients.discard(client)
        self._changed()

    def _changed(self) -> None:
        if self._on_clients is not None:
            self._on_clients(len(self._clients))
