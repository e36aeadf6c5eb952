"""Read a topic's records by Kafka record time, outside every consumer group.

Each partition's window is found with the broker's offsets-for-times (the first offset at or
after a time); records are then read from those offsets with a group-free consumer (nothing
joined, nothing committed: the live workers never see this reader).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config.settings import Settings
from streams.exceptions import BrokerUnavailable, TopicNotFound
from streams.kafka.readers import group_free_consumer
from streams.time_ranges import TimeRange, format_ms

__all__ = ["Plan", "Record", "Span", "TopicReader"]

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


class TopicReader:
    """A started group-free consumer; use ``async with TopicReader(settings) as r``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        consumer = group_free_consumer(self.settings)
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BrokerUnavailable(
                f"no Kafka broker answers at {self.settings.bootstrap} ({exc}): run "
                "`storywatch kafka start` or set STORYWATCH_KAFKA_BOOTSTRAP"
            ) from None
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use TopicReader in `async with`"
        return self._consumer

    async def _partition_ids(self, topic: str) -> set[int] | None:
        # The consumer's own metadata covers only what it was assigned; a fresh fetch of the
        # whole cluster's metadata names every topic and its partitions (aiokafka keeps that
        # call on its client; `topics()` returns only the names).
        cluster = await self.consumer._client.fetch_all_metadata()
        return cluster.partitions_for_topic(topic)

    async def exists(self, topic: str) -> bool:
        return bool(await self._partition_ids(topic))

    async def partitions(self, topic: str) -> list[TopicPartition]:
        found = await self._partition_ids(topic)
        if not found:
            raise TopicNotFound(
                f"topic {topic!r} does not exist at {self.settings.bootstrap}: check the "
                "STORYWATCH_TOPIC_* setting, or start a worker once (it creates the topics)"
            )
        return [TopicPartition(topic, p) for p in sorted(found)]

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

    async def records(self, plan: Plan) -> AsyncIterator[Record]:
        """The window's records; one partition in offset order, several merged by time
        (then partition, offset): the order a single ordered reader would most likely see."""
        if len(plan.spans) <= 1:
            for span in plan.spans:
                async for record in self._span(plan, span):
                    yield record
            return
        gathered: list[list[Record]] = []
        for span in plan.spans:
            gathered.append([r async for r in self._span(plan, span)])
        for record in heapq.merge(*gathered, key=lambda r: (r.timestamp, r.partition, r.offset)):
            yield record

    async def _span(self, plan: Plan, span: Span) -> AsyncIterator[Record]:
        tp = TopicPartition(plan.topic, span.partition)
        consumer = self.consumer
        consumer.assign([tp])
        consumer.seek(tp, span.start)
        position = span.start
        while position < span.end:
            batch = await consumer.getmany(tp, timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            if not batch.get(tp) and await consumer.position(tp) >= span.end:
                return  # the rest were control records (transaction markers)
            for message in batch.get(tp, []):
                position = message.offset + 1
                if message.offset >= span.end:
                    return
                # Offsets-for-times brackets the window; a producer may stamp records out of
                # order, so each record's own time decides.
                if plan.window.holds(message.timestamp):
                    yield Record(
                        span.partition,
                        message.offset,
                        int(message.timestamp),
                        message.key,
                        message.value,
                        tuple(message.headers or ()),
                    )
