"""Read the ``alerts`` topic by time or offset: the history behind ``GET /api/alerts`` and
the live tail behind ``GET /api/alerts/stream`` (Server-Sent Events).

Every request reads Kafka itself (its own consumer, no group, nothing committed), so any
worker serves every alert and a browser resumes exactly where it stopped: an alert's
SSE id is its offset on the topic.

An alert can be on the topic twice with the same CloudEvent id: the subscriptions agent
sends a batch's alerts before it writes its state, so a worker killed in between re-sends
them after the restart. Both readers serve an id once: a history request remembers the ids
it returned (at most ``limit``, 1,000), a live stream the last :data:`_LIVE_IDS` ids it sent,
first reading back up to :data:`_RESUME_LOOKBACK` records before a resume point, so an alert
sent before a reconnect is not sent again after it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from config.settings import Settings
from streams.kafka_readers import decode_json_object, group_free_consumer

__all__ = ["AlertReader", "OwnedAlert", "ServedIds"]

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
# Why 1,000 records: read back before a resume point (a reconnect with Last-Event-ID) to
# learn the ids the client already has; a few hundred KiB of reading per reconnect.
_RESUME_LOOKBACK = 1_000


class ServedIds:
    """The CloudEvent ids already served, the last ``capacity`` of them (oldest forgotten
    first). An alert without an id is never taken for a duplicate."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first(self, alert: dict[str, Any]) -> bool:
        """True the first time an alert's id is seen (and remember it); False for a copy."""
        alert_id = alert.get("id")
        if not isinstance(alert_id, str):
            return True
        if alert_id in self._ids:
            return False
        self._ids[alert_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class AlertReader:
    """Reads the alerts topic for one request at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partition = TopicPartition(settings.topic_alerts, 0)

    @asynccontextmanager
    async def _consumer(self) -> AsyncIterator[AIOKafkaConsumer]:
        consumer = group_free_consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign([self.partition])
            yield consumer
        finally:
            await consumer.stop()

    async def _start_offset(self, consumer: AIOKafkaConsumer, since_ms: int | None) -> int:
        if since_ms is None:
            return int((await consumer.beginning_offsets([self.partition]))[self.partition])
        found = await consumer.offsets_for_times({self.partition: since_ms})
        hit = found.get(self.partition)
        if hit is None:  # nothing at or after that time
            return int((await consumer.end_offsets([self.partition]))[self.partition])
        return int(hit.offset)

    async def _range(
        self, consumer: AIOKafkaConsumer, start: int, end: int
    ) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
        """The records at offsets [start, end): at most :data:`_SCAN_LIMIT`, and only until
        :data:`_READ_DEADLINE_S` has passed (the broker is slow or gone)."""
        consumer.seek(self.partition, start)
        scanned = 0
        deadline = time.monotonic() + _READ_DEADLINE_S
        while start < end and scanned < _SCAN_LIMIT and time.monotonic() <= deadline:
            batch = await consumer.getmany(self.partition, timeout_ms=_POLL_MS)
            for record in batch.get(self.partition, []):
                if record.offset >= end:
                    return
                scanned += 1
                start = record.offset + 1
                yield record

    async def history(
        self, since_ms: int | None, until_ms: int | None, limit: int, keep: Predicate
    ) -> list[OwnedAlert]:
        """Alerts whose Kafka time is in [since, until), oldest first, at most ``limit``;
        a re-sent copy of an alert (same CloudEvent id) once."""
        async with self._consumer() as consumer:
            start = await self._start_offset(consumer, since_ms)
            end = int((await consumer.end_offsets([self.partition]))[self.partition])
            found: list[OwnedAlert] = []
            served = ServedIds(limit)
            async with aclosing(self._range(consumer, start, end)) as records:
                async for record in records:
                    if until_ms is not None and record.timestamp >= until_ms:
                        break
                    alert = decode_json_object(record.value)
                    if alert is not None and keep(alert) and served.first(alert):
                        found.append((record.offset, alert))
                        if len(found) >= limit:
                            break
            return found

    async def follow(
        self, after_offset: int | None, keep: Predicate, alive: Callable[[], bool]
    ) -> AsyncIterator[OwnedAlert]:
        """Alerts after ``after_offset`` (None: only new ones), as they arrive, while
        ``alive()``; a re-sent copy of an alert already sent (same CloudEvent id) is
        skipped."""
        served = ServedIds(_LIVE_IDS)
        async with self._consumer() as consumer:
            if after_offset is None:
                start = int((await consumer.end_offsets([self.partition]))[self.partition])
            else:
                start = after_offset + 1
                first = int((await consumer.beginning_offsets([self.partition]))[self.partition])
                back = max(first, start - _RESUME_LOOKBACK)
                async with aclosing(self._range(consumer, back, start)) as records:
                    async for record in records:  # what the client already has
                        alert = decode_json_object(record.value)
                        if alert is not None and keep(alert):
                            served.first(alert)
            consumer.seek(self.partition, start)
            while alive():
                batch = await consumer.getmany(self.partition, timeout_ms=_POLL_MS)
                for record in batch.get(self.partition, []):
                    alert = decode_json_object(record.value)
                    if alert is not None and keep(alert) and served.first(alert):
                        yield record.offset, alert
