"""Read the ``alerts`` topic by time or offset: the history behind ``GET /api/alerts`` and
the live tail behind ``GET /api/alerts/stream`` (Server-Sent Events).

Every request reads Kafka itself (its own consumer, no group, nothing committed), so any
worker serves every alert and a browser resumes exactly where it stopped: an alert's
SSE id is its offset on the topic.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from config.settings import Settings
from streams.kafka_readers import decode_json_object, group_free_consumer

__all__ = ["AlertReader", "OwnedAlert"]

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

    async def history(
        self, since_ms: int | None, until_ms: int | None, limit: int, keep: Predicate
    ) -> list[OwnedAlert]:
        """Alerts whose Kafka time is in [since, until), oldest first, at most ``limit``."""
        async with self._consumer() as consumer:
            start = await self._start_offset(consumer, since_ms)
            end = int((await consumer.end_offsets([self.partition]))[self.partition])
            consumer.seek(self.partition, start)
            found: list[OwnedAlert] = []
            scanned = 0
            deadline = time.monotonic() + _READ_DEADLINE_S
            while start < end and len(found) < limit and scanned < _SCAN_LIMIT:
                if time.monotonic() > deadline:
                    break
                batch = await consumer.getmany(self.partition, timeout_ms=_POLL_MS)
                for record in batch.get(self.partition, []):
                    scanned += 1
                    start = record.offset + 1
                    if until_ms is not None and record.timestamp >= until_ms:
                        return found
                    alert = decode_json_object(record.value)
                    if alert is not None and keep(alert):
                        found.append((record.offset, alert))
                        if len(found) >= limit:
                            break
                    if record.offset + 1 >= end:
                        break
            return found

    async def follow(
        self, after_offset: int | None, keep: Predicate, alive: Callable[[], bool]
    ) -> AsyncIterator[OwnedAlert]:
        """Alerts after ``after_offset`` (None: only new ones), as they arrive, while
        ``alive()``."""
        async with self._consumer() as consumer:
            if after_offset is None:
                start = int((await consumer.end_offsets([self.partition]))[self.partition])
            else:
                start = after_offset + 1
            consumer.seek(self.partition, start)
            while alive():
                batch = await consumer.getmany(self.partition, timeout_ms=_POLL_MS)
                for record in batch.get(self.partition, []):
                    alert = decode_json_object(record.value)
                    if alert is not None and keep(alert):
                        yield record.offset, alert
