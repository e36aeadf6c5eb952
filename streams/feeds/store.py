"""A compacted topic followed into memory: the feeds, their poll state and the seen articles.

Every worker reads each of these topics from its start (no consumer group) and then follows
it, as the subscriptions store does (streams/subscriptions/store.py says why not a Faust
GlobalTable): the topic is the storage, memory a cache; a worker that takes over a feed's
partition already holds its state. Writes wait for the broker's acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config.settings import Settings
from streams.feeds.errors import FeedError
from streams.kafka.readers import group_free_consumer, topic_partitions

__all__ = ["CompactedView", "StoreNotReady", "read_topic"]

logger = logging.getLogger(__name__)

Record = dict[str, Any]
# (topic, key, record or None for a tombstone) -> the broker acknowledged it.
Send = Callable[[str, str, Record | None], Awaitable[None]]

# Why 30 s: how long a caller waits for a starting worker to read a topic to its end.
_READY_TIMEOUT_S = 30.0
# Why 1 s: a feed added on another worker or by the CLI is seen within about this.
_POLL_MS = 1000
# Why 5 s: a reader that lost the broker tries again this often.
_RETRY_S = 5.0


class StoreNotReady(FeedError):
    """The worker has not read a feeds topic to its end yet."""


class CompactedView:
    """Key -> (record, partition) of one compacted topic, as of what this worker has read."""

    def __init__(self, settings: Settings, topic: str, send: Send | None = None) -> None:
        self.settings = settings
        self.topic = topic
        self._send = send
        self.records: dict[str, Record] = {}
        self.partitions: dict[str, int] = {}
        self._ready = asyncio.Event()
        self.on_record: Callable[[str, Record | None], None] | None = None

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    async def ready(self) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), _READY_TIMEOUT_S)
        except TimeoutError:
            raise StoreNotReady(
                f"the topic {self.topic!r} was not read within {_READY_TIMEOUT_S:.0f} s: "
                f"check the broker at {self.settings.bootstrap}"
            ) from None

    async def put(self, key: str, record: Record | None) -> None:
        """Write (None: a tombstone), wait for the broker, then serve it here at once."""
        if self._send is None:
            raise FeedError(f"this view of {self.topic!r} is read-only")
        await self._send(self.topic, key, record)
        self.apply(key, record, None)

    def apply(self, key: str, record: Record | None, partition: int | None) -> None:
        if record is None:
            self.records.pop(key, None)
        else:
            self.records[key] = record
            if partition is not None:
                self.partitions[key] = partition
        if self.on_record is not None:
            self.on_record(key, record)

    async def run(self) -> None:
        """Read the topic from its start, then follow it, for as long as the worker runs."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, StoreNotReady) as exc:
                logger.warning(
                    "reading %s failed (%s); retrying in %.0f s", self.topic, exc, _RETRY_S
                )
                await asyncio.sleep(_RETRY_S)

    async def _follow(self) -> None:
        consumer = group_free_consumer(self.settings)
        await consumer.start()
        try:
            partitions = await _assign_all(consumer, self.topic)
            ends = await consumer.end_offsets(partitions)
            while True:
                batch = await consumer.getmany(*partitions, timeout_ms=_POLL_MS)
                for tp, messages in batch.items():
                    for message in messages:
                        decoded = _decode(message.key, message.value)
                        if decoded is not None:
                            self.apply(decoded[0], decoded[1], tp.partition)
                if not self._ready.is_set() and await _caught_up(consumer, ends):
                    logger.info("read %d records from %s", len(self.records), self.topic)
                    self._ready.set()
        finally:
            await consumer.stop()


def _decode(key: bytes | None, value: bytes | None) -> tuple[str, Record | None] | None:
    if key is None:
        return None
    try:
        name = key.decode()
        record = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        logger.warning("skipping an undecodable record")
        return None
    if record is not None and not isinstance(record, dict):
        return None
    return name, record


async def _assign_all(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = await topic_partitions(consumer, topic)
    if not found:
        raise StoreNotReady(f"topic {topic!r} does not exist: `storywatch worker` creates it")
    partitions = [TopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def read_topic(settings: Settings, topic: str) -> dict[str, Record]:
    """Read a compacted topic to its current end once (the CLI's view): key -> record."""
    consumer = group_free_consumer(settings)
    await consumer.start()
    try:
        partitions = await _assign_all(consumer, topic)
        ends = await consumer.end_offsets(partitions)
        records: dict[str, Record] = {}
        while not await _caught_up(consumer, ends):
            batch = await consumer.getmany(*partitions, timeout_ms=_POLL_MS)
            for messages in batch.values():
                for message in messages:
                    decoded = _decode(message.key, message.value)
                    if decoded is None:
                        continue
                    if decoded[1] is None:
                        records.pop(decoded[0], None)
                    else:
                        records[decoded[0]] = decoded[1]
        return records
    finally:
        await consumer.stop()
