"""The one way a topic is followed into memory on every worker: the subscriptions store, the
dashboard's read model and the feeds' compacted views.

A consumer of the worker's own (no group: every worker reads every partition) reads the
topics from their start, says once when it has read to the end they had when it started
("caught up": the worker may serve what it holds), then keeps following them. The alerts
fan-out behind the live streams follows from the end instead (``from_end``): it hands on
only what arrives. When the
broker goes away (a restart, a network cut) the follower logs it and tries again every
``retry_s``, resuming at the offset after the last record it handed over, so nothing is
handed over twice and what memory holds stays served meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from config.groups import KafkaSettings
from streams.exceptions import TopicNotFound
from streams.kafka.readers import group_free_consumer, topic_partitions

__all__ = ["Message", "TopicFollower", "read_to_end"]

logger = logging.getLogger(__name__)

Message: TypeAlias = ConsumerRecord[bytes, bytes]
Apply = Callable[[Message], None]
# A started group-free consumer for as long as the context lasts (stopped after).
Consumers = Callable[[], AbstractAsyncContextManager[AIOKafkaConsumer]]

# Why 1,000 records: one poll's worth applied before yielding to the web server, so a
# catch-up of millions of records never blocks requests for long.
_MAX_RECORDS = 1000
# Why 5 s: a follower that lost the broker tries again this often (logged each time).
RETRY_S = 5.0
# Why 30 s: how long a caller waits for a starting worker to read a topic to its end; past
# it the caller answers an error (a 503) rather than serve a partial list.
READY_TIMEOUT_S = 30.0
# Why 1 s: the one-shot read of a command (read_to_end) checks this often that it is done.
_POLL_MS = 1000


class TopicFollower:
    """Hands every record of ``topics`` to ``apply`` in offset order per partition, from the
    start (``from_end``: from the end they have at the first start), for as long as
    :meth:`run` runs; ``caught_up`` is set (and ``on_caught_up`` called) once, when the ends
    the topics had at the first start are reached. ``consumers``: where its consumer comes
    from (default: a group-free one of the Kafka settings)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        apply: Apply,
        *,
        poll_ms: int,
        name: str,
        on_caught_up: Callable[[], None] | None = None,
        retry_s: float = RETRY_S,
        from_end: bool = False,
        consumers: Consumers | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = tuple(topics)
        self.name = name  # for the log: what the worker reads this for
        self._apply = apply
        self._poll_ms = poll_ms
        self._retry_s = retry_s
        self._on_caught_up = on_caught_up
        self._from_end = from_end
        self._consumers = consumers or (lambda: _started(kafka))
        self.caught_up = asyncio.Event()
        self.positions: dict[TopicPartition, int] = {}  # the next offset to hand over
        self.connections = 0  # consumers started so far (1 + the retries that reached it)

    async def wait_caught_up(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Wait until caught up; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Follow the topics for as long as the worker runs (an app task)."""
        while True:
            try:
                await self.follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, TopicNotFound) as exc:
                # The broker went away or a topic is missing: keep what memory holds, retry.
                logger.warning(
                    "%s: reading %s failed (%s); retrying in %.0f s",
                    self.name,
                    ", ".join(self.topics),
                    exc,
                    self._retry_s,
                )
                await asyncio.sleep(self._retry_s)

    async def follow(self) -> None:
        """One connection's worth of following: returns only by an error."""
        async with self._consumers() as consumer:
            self.connections += 1
            await self._follow(consumer)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await _assign(consumer, self.topics, self.kafka.bootstrap)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if tp not in self.positions and self._from_end:
                self.positions[tp] = int(ends[tp])
            if tp in self.positions:
                consumer.seek(tp, self.positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        while True:
            if not self.caught_up.is_set() and await _reached(consumer, ends, self.positions):
                self.caught_up.set()
                logger.info("%s: read %s to its end", self.name, ", ".join(self.topics))
                if self._on_caught_up is not None:
                    self._on_caught_up()
            batch = await consumer.getmany(
                *partitions, timeout_ms=self._poll_ms, max_records=_MAX_RECORDS
            )
            for tp, messages in batch.items():
                for message in messages:
                    self._apply(message)
                    self.positions[tp] = message.offset + 1
            await asyncio.sleep(0)  # a catch-up yields to the web server between polls


@asynccontextmanager
async def _started(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = group_free_consumer(kafka)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def read_to_end(kafka: KafkaSettings, topics: Sequence[str], apply: Apply) -> None:
    """Hand every record of ``topics`` to ``apply``, from the start to the ends they have
    now, then stop (a command's one look); :class:`TopicNotFound` names a missing topic."""
    consumer = group_free_consumer(kafka)
    await consumer.start()
    try:
        partitions = await _assign(consumer, topics, kafka.bootstrap)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read: dict[TopicPartition, int] = {}
        while not await _reached(consumer, ends, read):
            batch = await consumer.getmany(
                *partitions, timeout_ms=_POLL_MS, max_records=_MAX_RECORDS
            )
            for tp, messages in batch.items():
                for message in messages:
                    apply(message)
                    read[tp] = message.offset + 1
    finally:
        await consumer.stop()


async def _assign(
    consumer: AIOKafkaConsumer, topics: Sequence[str], bootstrap: str
) -> list[TopicPartition]:
    partitions: list[TopicPartition] = []
    for topic in topics:
        found = await topic_partitions(consumer, topic)
        if not found:
            raise TopicNotFound(
                f"topic {topic!r} does not exist at {bootstrap} yet: `storywatch worker` "
                "creates it at start"
            )
        partitions.extend(TopicPartition(topic, p) for p in sorted(found))
    consumer.assign(partitions)
    return partitions


async def _reached(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], read: dict[TopicPartition, int]
) -> bool:
    """Whether every partition is read up to ``ends`` (by what was handed over, or by the
    consumer's position: past control records and compacted-away offsets)."""
    for tp, end in ends.items():
        if read.get(tp, 0) < end and await consumer.position(tp) < end:
            return False
    return True
