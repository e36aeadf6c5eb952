"""The one reader of a window of a topic, outside every consumer group: replay and rebuild
(by Kafka record time), ``storywatch history`` and ``GET /api/alerts`` (by time, then by
offset with a cursor).

A time window is found on each partition with the broker's offsets-for-times (the first
offset at or after a time); records are then read from those offsets with a group-free
consumer (nothing joined, nothing committed: the live workers never see this reader).

Re-sent copies: a record with a string ``id`` (an alert's CloudEvent id) may be on a topic
twice, because a stage killed between sending and writing its state sends again after the
restart. The readers of a window serve an id once (:class:`ServedIds`):
``storywatch history``, ``GET /api/alerts`` and the replay's comparison give the same
answer. Records without an id (story events) are never taken for copies.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config.groups import KafkaSettings
from streams.exceptions import BrokerUnavailable, TopicNotFound
from streams.kafka.readers import cluster_partitions, group_free_consumer
from streams.time_ranges import TimeRange, format_ms

__all__ = ["Plan", "Record", "ServedIds", "Span", "TopicReader"]

# Why 500 ms: how long one fetch waits for records before the reader checks it is done.
_POLL_MS = 500
# Why 2,000: records per fetch; a batch of embedded headlines is ~3 MB.
_MAX_RECORDS = 2000


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    timestamp: int  # Kafka record time, epoch ms
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Span:
    """Offsets ``[start, end)`` of one partition that hold the window's records."""

    partition: int
    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """Where a time window lies on a topic, and what the topic still keeps."""

    topic: str
    window: TimeRange
    spans: tuple[Span, ...]
    earliest_ms: int | None  # the oldest record time still kept (None: the topic is empty)
    latest_ms: int | None  # the newest record's time (None: the topic is empty)

    @property
    def total(self) -> int:
        return sum(s.end - s.start for s in self.spans)

    @property
    def clipped(self) -> bool:
        """The window starts before the oldest record the topic still keeps."""
        return (
            self.window.start_ms is not None
            and self.earliest_ms is not None
            and self.window.start_ms < self.earliest_ms
        )

    def kept(self) -> str:
        if self.earliest_ms is None or self.latest_ms is None:
            return f"{self.topic} holds no records"
        return f"{self.topic} holds {format_ms(self.earliest_ms)} to {format_ms(self.latest_ms)}"


class ServedIds:
    """The ids already served by one read, the last ``capacity`` of them (oldest forgotten
    first). A record without a string ``id`` is never taken for a copy."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity  # None: every id of the read (a bounded window)
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first(self, value: dict[str, Any]) -> bool:
        """True the first time a record's id is seen (and remember it); False for a copy."""
        record_id = value.get("id")
        if not isinstance(record_id, str):
            return True
        if record_id in self._ids:
            return False
        self._ids[record_id] = None
        if self.capacity is not None and len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class TopicReader:
    """Reads windows of topics with one group-free consumer: ``async with
    TopicReader(kafka) as r`` starts one of its own; :meth:`over` reads with a consumer
    the caller started (and stops)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None
        self._owned = True

    @classmethod
    def over(cls, kafka: KafkaSettings, consumer: AIOKafkaConsumer) -> TopicReader:
        """A reader on ``consumer`` (started, not stopped here)."""
        reader = cls(kafka)
        reader._consumer, reader._owned = consumer, False
        return reader

    async def __aenter__(self) -> TopicReader:
        consumer = group_free_consumer(self.kafka)
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BrokerUnavailable(
                f"no Kafka broker answers at {self.kafka.bootstrap} ({exc}): run "
                "`storywatch kafka start` or set STORYWATCH_KAFKA_BOOTSTRAP"
            ) from None
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None and self._owned:
            await self._consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use TopicReader in `async with`"
        return self._consumer

    # --- where things are -----------------------------------------------------------------

    async def exists(self, topic: str) -> bool:
        return bool(await cluster_partitions(self.consumer, topic))

    async def partitions(self, topic: str) -> list[TopicPartition]:
        found = await cluster_partitions(self.consumer, topic)
        if not found:
            raise TopicNotFound(
                f"topic {topic!r} does not exist at {self.kafka.bootstrap}: check the "
                "STORYWATCH_TOPIC_* setting, or start a worker once (it creates the topics)"
            )
        return [TopicPartition(topic, p) for p in sorted(found)]

    async def first_offset(self, tp: TopicPartition) -> int:
        """The oldest offset ``tp`` still keeps."""
        return int((await self.consumer.beginning_offsets([tp]))[tp])

    async def end_offset(self, tp: TopicPartition) -> int:
        """The offset the next record written to ``tp`` gets."""
        return int((await self.consumer.end_offsets([tp]))[tp])

    async def offset_at(self, tp: TopicPartition, at_ms: int | None) -> int:
        """The first offset of ``tp`` whose record time is at or after ``at_ms`` (None: the
        oldest kept); the end when no record is that late."""
        if at_ms is None:
            return await self.first_offset(tp)
        hit = (await self.consumer.offsets_for_times({tp: at_ms})).get(tp)
        return await self.end_offset(tp) if hit is None else int(hit.offset)

    async def plan(self, topic: str, window: TimeRange) -> Plan:
        """The offsets of ``window`` on every partition of ``topic``."""
        consumer = self.consumer
        parts = await self.partitions(topic)
        begins = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        oldest = await consumer.offsets_for_times({tp: 0 for tp in parts})
        earliest = [hit.timestamp for hit in oldest.values() if hit is not None]
        latest = [await self._last_time(tp, ends[tp]) for tp in parts if ends[tp] > begins[tp]]
        starts = await self._offsets_at(parts, window.start_ms, begins, ends)
        stops = await self._offsets_at(parts, window.end_ms, ends, ends)
        spans = tuple(
            Span(tp.partition, starts[tp], max(starts[tp], stops[tp]))
            for tp in parts
            if stops[tp] > starts[tp]
        )
        return Plan(
            topic,
            window,
            spans,
            min(earliest) if earliest else None,
            max((t for t in latest if t is not None), default=None),
        )

    async def _offsets_at(
        self,
        parts: list[TopicPartition],
        at_ms: int | None,
        unset: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        if at_ms is None:
            return {tp: int(unset[tp]) for tp in parts}
        found = await self.consumer.offsets_for_times({tp: at_ms for tp in parts})
        # No record at or after that time: the window ends (or starts) past the last one.
        return {
            tp: int(ends[tp]) if found.get(tp) is None else int(found[tp].offset) for tp in parts
        }

    async def _last_time(self, tp: TopicPartition, end: int) -> int | None:
        self.consumer.assign([tp])
        self.consumer.seek(tp, end - 1)
        batch = await self.consumer.getmany(tp, timeout_ms=_POLL_MS * 10, max_records=1)
        records = batch.get(tp, [])
        return int(records[0].timestamp) if records else None

    # --- reading --------------------------------------------------------------------------

    async def records(self, plan: Plan) -> AsyncIterator[Record]:
        """The window's records; one partition in offset order, several merged by time
        (then partition, offset): the order a single ordered reader would most likely see."""
        if len(plan.spans) <= 1:
            for span in plan.spans:
                async for record in self._in_window(plan, span):
                    yield record
            return
        gathered: list[list[Record]] = []
        for span in plan.spans:
            gathered.append([r async for r in self._in_window(plan, span)])
        for record in heapq.merge(*gathered, key=lambda r: (r.timestamp, r.partition, r.offset)):
            yield record

    async def _in_window(self, plan: Plan, span: Span) -> AsyncIterator[Record]:
        tp = TopicPartition(plan.topic, span.partition)
        async for record in self.span(tp, span.start, span.end):
            # Offsets-for-times brackets the window; a producer may stamp records out of
            # order, so each record's own time decides.
            if plan.window.holds(record.timestamp):
                yield record

    async def span(
        self,
        tp: TopicPartition,
        start: int,
        end: int,
        *,
        most: int | None = None,
        deadline_s: float | None = None,
    ) -> AsyncGenerator[Record, None]:
        """The records of ``tp`` at offsets ``[start, end)`` in offset order; at most
        ``most`` of them and only until ``deadline_s`` has passed, when given (a caller
        that answers with what it found: the broker is slow or gone)."""
        consumer = self.consumer
        consumer.assign([tp])
        consumer.seek(tp, start)
        position, read = start, 0
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        while position < end:
            if (most is not None and read >= most) or (
                deadline is not None and time.monotonic() > deadline
            ):
                return
            batch = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            if not batch.get(tp) and await consumer.position(tp) >= end:
                return  # the rest were control records (transaction markers) or compacted
            for message in batch.get(tp, []):
                if message.offset >= end or (most is not None and read >= most):
                    return
                position = message.offset + 1
                read += 1
                yield Record(
                    tp.partition,
                    message.offset,
                    int(message.timestamp),
                    message.key,
                    message.value,
                    tuple(message.headers or ()),
                )
