"""Read the ``alerts`` topic by time or offset: the history behind ``GET /api/alerts`` and
the live tail behind ``GET /api/alerts/stream`` (Server-Sent Events).

A history request reads Kafka itself with the one window reader (streams/kafka/window.py:
its own consumer, no group, nothing committed), so any worker serves every alert. Live
streams share ONE reader per worker (:class:`AlertFanout`): it follows the topic's end and
hands each alert to the streams of its owner; a stream resuming with ``Last-Event-ID``
reads only the gap up to the shared reader's position with a short-lived consumer of its
own, then joins the fan-out. A browser resumes exactly where it stopped: an alert's SSE id
is its offset on the topic.

History pages on with a cursor (``next_cursor``, then ``?cursor=``): the offset after the
last record the page used, so the next page reads on from exactly there and paging through
a window returns what one large request would, in the same order.

An alert can be on the topic twice with the same CloudEvent id: the subscriptions agent
sends a batch's alerts before it writes its state, so a worker killed in between re-sends
them after the restart. Both readers serve an id once (the answer every reader of a window
gives, ``storywatch history`` too: streams/kafka/window.py): a history request remembers the ids
it returned (at most ``limit``, 1,000), a live stream the last :data:`_LIVE_IDS` ids it sent.
Both first read back up to :data:`_RESUME_LOOKBACK` records before where they resume (a
history cursor, a stream's ``Last-Event-ID``; a history page not before its window's start),
so an alert served before is not served again after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from config.groups import KafkaSettings
from streams.cursors import NOT_HANDED_OUT, BadCursor, decode_cursor, encode_cursor
from streams.kafka.follower import Message, TopicFollower
from streams.kafka.readers import decode_json_object, group_free_consumer
from streams.kafka.window import Record, ServedIds, TopicReader

__all__ = [
    "AlertFanout",
    "AlertPage",
    "AlertReader",
    "OwnedAlert",
    "ServedIds",
    "decode_alert_cursor",
    "encode_alert_cursor",
]

logger = logging.getLogger(__name__)

OwnedAlert = tuple[int, dict[str, Any]]  # (offset on the alerts topic, the CloudEvent)
Predicate = Callable[[dict[str, Any]], bool]

# Why 500 ms: how long a live tail waits on Kafka before checking the client is still there.
_POLL_MS = 500
# Why 10 s: a history request that has not reached the end by then answers with what it
# found (the broker is slow or gone); the client narrows the window.
_READ_DEADLINE_S = 10.0
# Why 10,000: records read per history request at most (JSON-decoded and filtered), so one
# request cannot walk a whole retained topic.
_SCAN_LIMIT = 10_000
# Why 10,000: the ids a live stream remembers (its own owner's alerts only, ~100 bytes
# each: at most ~1 MB per stream). A re-sent alert follows its original by the alerts sent
# while the worker restarted (seconds to minutes): an owner receiving fewer than 10,000
# alerts in that time never sees one twice.
_LIVE_IDS = 10_000
# Why 1,000 records: read back before a resume point (a reconnect with Last-Event-ID, a
# history cursor) to learn the ids the client already has; a few hundred KiB of reading per
# reconnect or page.
_RESUME_LOOKBACK = 1_000
_CURSOR_KIND = "alerts"
# Why 1,000: alerts queued for one live stream (its own owner's only) before it is taken for
# stuck and closed; it reconnects with Last-Event-ID and reads the gap itself.
_STREAM_QUEUE = 1_000
# Why 1 s: how often a quiet live stream checks its client is still there.
_ALIVE_CHECK_S = 1.0
# Why 5 s: the shared reader that lost the broker tries again this often (logged each time).
_RETRY_S = 5.0


def encode_alert_cursor(offset: int) -> str:
    """The ``next_cursor`` of a history page whose successor starts at ``offset``."""
    return encode_cursor(_CURSOR_KIND, (offset,))


def decode_alert_cursor(cursor: str) -> int:
    """The offset a ``?cursor=`` resumes at; :class:`BadCursor` if this API did not make it."""
    (offset,) = decode_cursor(cursor, _CURSOR_KIND, (0,))
    if not isinstance(offset, int) or offset < 0:
        raise BadCursor(NOT_HANDED_OUT)
    return int(offset)


@dataclass
class AlertPage:
    """One history page as it is read, record by record (:meth:`take`), from ``start``.

    ``resume`` is where the next page starts: after the last record this page used (every
    record while the page fills, then none: the records after its last alert are only
    looked at to learn whether another one follows)."""

    until_ms: int | None
    limit: int
    keep: Predicate
    served: ServedIds
    start: int
    alerts: list[OwnedAlert] = field(default_factory=list)
    more: bool = False  # another alert follows the page's last one
    ended: bool = False  # a record at or after ``until_ms``: the window is done
    resume: int = field(init=False)
    read_to: int = field(init=False)  # the offset after the last record read

    def __post_init__(self) -> None:
        self.resume = self.read_to = self.start

    def take(self, record: Record) -> bool:
        """Read ``record``; False once the page needs no more records."""
        self.read_to = record.offset + 1
        if self.until_ms is not None and record.timestamp >= self.until_ms:
            self.ended = True
            return False
        alert = decode_json_object(record.value)
        wanted = alert is not None and self.keep(alert) and self.served.first(alert)
        if len(self.alerts) >= self.limit:
            self.more = wanted
            return not wanted
        self.resume = record.offset + 1
        if wanted and alert is not None:
            self.alerts.append((record.offset, alert))
        return True

    def next_offset(self, end: int) -> int | None:
        """Where the next page starts; None when the window has no more alerts (up to
        ``end``, the topic's end when the page was read). A page cut short by the scan
        limit or the read deadline also answers where to read on, even with no alerts."""
        if self.more:
            return self.resume
        if self.ended or self.read_to >= end:
            return None
        return self.resume


class AlertReader:
    """Reads the alerts topic for one request at a time."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, on_consumers: Callable[[int], None] | None = None
    ) -> None:
        self.kafka = kafka
        self.partition = TopicPartition(topic, 0)
        self.consumers = 0  # Kafka consumers of this reader open now
        self._on_consumers = on_consumers

    def _count(self, change: int) -> None:
        self.consumers += change
        if self._on_consumers is not None:
            self._on_consumers(self.consumers)

    @asynccontextmanager
    async def _consumer(self) -> AsyncIterator[AIOKafkaConsumer]:
        consumer = group_free_consumer(self.kafka)
        self._count(1)
        try:
            await consumer.start()
            try:
                consumer.assign([self.partition])
                yield consumer
            finally:
                await consumer.stop()
        finally:
            self._count(-1)

    @asynccontextmanager
    async def _window(self) -> AsyncIterator[TopicReader]:
        """The one window reader (streams/kafka/window.py) on a consumer of this reader."""
        async with self._consumer() as consumer:
            yield TopicReader.over(self.kafka, consumer)

    def _range(self, window: TopicReader, start: int, end: int) -> AsyncGenerator[Record, None]:
        """The records at offsets [start, end): at most :data:`_SCAN_LIMIT`, and only until
        :data:`_READ_DEADLINE_S` has passed (the broker is slow or gone)."""
        return window.span(
            self.partition, start, end, most=_SCAN_LIMIT, deadline_s=_READ_DEADLINE_S
        )

    async def _remember(
        self, window: TopicReader, start: int, end: int, keep: Predicate, served: ServedIds
    ) -> None:
        """Learn the ids of the alerts at offsets [start, end) that ``keep`` takes: what a
        client resuming at ``end`` already has."""
        async with aclosing(self._range(window, start, end)) as records:
            async for record in records:
                alert = decode_json_object(record.value)
                if alert is not None and keep(alert):
                    served.first(alert)

    async def history(
        self,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        keep: Predicate,
        after: int | None = None,
    ) -> tuple[list[OwnedAlert], int | None]:
        """Alerts whose Kafka time is in [since, until), oldest first, at most ``limit``;
        a re-sent copy of an alert (same CloudEvent id) once. ``after``: resume at that
        offset (a cursor's) instead of ``since``'s; the ids of the :data:`_RESUME_LOOKBACK`
        records before it (none before ``since``) are served already. Returns the alerts
        and the offset the next page starts at (None: none left)."""
        async with self._window() as window:
            first = await window.offset_at(self.partition, since_ms)
            start = first if after is None else after  # a relative since has moved on
            end = await window.end_offset(self.partition)
            served = ServedIds(limit + _RESUME_LOOKBACK)
            await self._remember(window, max(first, start - _RESUME_LOOKBACK), start, keep, served)
            page = AlertPage(until_ms, limit, keep, served, start)
            async with aclosing(self._range(window, start, end)) as records:
                async for record in records:
                    if not page.take(record):
                        break
            return page.alerts, page.next_offset(end)


@dataclass(eq=False)
class _Listener:
    """One live stream of the fan-out: its owner's alerts from offset ``start`` on."""

    keep: Predicate
    start: int
    queue: asyncio.Queue[OwnedAlert] = field(
        default_factory=lambda: asyncio.Queue(maxsize=_STREAM_QUEUE)
    )
    overflowed: bool = False

    def offer(self, offset: int, alert: dict[str, Any]) -> None:
        if self.overflowed or not self.keep(alert):
            return
        try:
            self.queue.put_nowait((offset, alert))
        except asyncio.QueueFull:
            self.overflowed = True  # the stream ends; the client resumes with Last-Event-ID


class AlertFanout:
    """The one reader of the alerts topic behind every live stream of a worker.

    It starts with the first stream (from the topic's end), then follows the topic for as
    long as the worker runs, and offers each alert to every stream, which keeps only its
    owner's. So N open streams cost one Kafka consumer, not N; a stream that falls
    :data:`_STREAM_QUEUE` alerts behind is closed (its client resumes with Last-Event-ID).
    """

    def __init__(self, reader: AlertReader) -> None:
        self.reader = reader
        self._listeners: set[_Listener] = set()
        self._wanted = asyncio.Event()
        # The one follower of a topic (streams/kafka/follower.py), from the topic's end, on
        # a consumer the reader counts (the storywatch_alerts_readers gauge).
        self._follower = TopicFollower(
            reader.kafka,
            [reader.partition.topic],
            self._offer,
            poll_ms=_POLL_MS,
            name="alerts fan-out",
            retry_s=_RETRY_S,
            from_end=True,
            consumers=reader._consumer,
        )

    @property
    def position(self) -> int:
        """The offset the shared reader hands out next."""
        return self._follower.positions.get(self.reader.partition, 0)

    @property
    def streams(self) -> int:
        return len(self._listeners)

    async def run(self) -> None:
        """Follow the topic once a stream wants it, for as long as the worker runs."""
        await self._wanted.wait()
        await self._follower.run()

    def _offer(self, record: Message) -> None:
        alert = decode_json_object(record.value)
        if alert is not None:
            for listener in self._listeners:
                listener.offer(record.offset, alert)

    async def follow(
        self, after_offset: int | None, keep: Predicate, alive: Callable[[], bool]
    ) -> AsyncIterator[OwnedAlert]:
        """Alerts after ``after_offset`` (None: only new ones) that ``keep`` takes, as they
        arrive, while ``alive()`` and the stream keeps up; a re-sent copy of an alert already
        sent (same CloudEvent id) is skipped."""
        self._wanted.set()
        try:
            await asyncio.wait_for(self._follower.caught_up.wait(), _READ_DEADLINE_S)
        except TimeoutError:
            # The shared reader has not reached the broker yet: end the stream (the client
            # reconnects, with Last-Event-ID, EventSource's retry after).
            logger.warning("the alerts topic's shared reader is not reading yet; stream ended")
            return
        served = ServedIds(_LIVE_IDS)
        listener = _Listener(keep, self.position)
        self._listeners.add(listener)
        try:
            if after_offset is not None and after_offset + 1 < listener.start:
                gap = self._gap(after_offset + 1, listener.start, keep, served, alive)
                async for found in gap:
                    yield found
            while alive() and not listener.overflowed:
                try:
                    offset, alert = await asyncio.wait_for(listener.queue.get(), _ALIVE_CHECK_S)
                except TimeoutError:
                    continue
                if served.first(alert):
                    yield offset, alert
        finally:
            self._listeners.discard(listener)

    async def _gap(
        self, start: int, end: int, keep: Predicate, served: ServedIds, alive: Callable[[], bool]
    ) -> AsyncIterator[OwnedAlert]:
        """A resuming stream's alerts at offsets [start, end) (the shared reader hands out
        the rest), read with a consumer of its own that closes at ``end``; the ids of the
        :data:`_RESUME_LOOKBACK` records before ``start`` are served already."""
        reader = self.reader
        partition = reader.partition
        async with reader._window() as window:
            first = await window.first_offset(partition)
            start = max(start, first)
            await reader._remember(
                window, max(first, start - _RESUME_LOOKBACK), start, keep, served
            )
            async with aclosing(window.span(partition, start, end)) as records:
                async for record in records:
                    if not alive():
                        return
                    alert = decode_json_object(record.value)
                    if alert is not None and keep(alert) and served.first(alert):
                        yield record.offset, alert
