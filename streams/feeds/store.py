"""A compacted topic followed into memory: the feeds, their poll state and the seen articles.

Every worker reads each of these topics from its start (no consumer group) and then follows
it with the one follower (streams/kafka/follower.py), as the subscriptions store does
(streams/subscriptions/store.py says why not a Faust GlobalTable): the topic is the storage,
memory a cache; a worker that takes over a feed's partition already holds its state. Writes
wait for the broker's acknowledgement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from config.groups import KafkaSettings
from streams.feeds.errors import FeedError
from streams.kafka.follower import READY_TIMEOUT_S, Message, TopicFollower, read_to_end

__all__ = ["CompactedView", "StoreNotReady", "read_topic"]

logger = logging.getLogger(__name__)

Record = dict[str, Any]
# (topic, key, record or None for a tombstone) -> the broker acknowledged it.
Send = Callable[[str, str, Record | None], Awaitable[None]]

# Why 1 s: a feed added on another worker or by the CLI is seen within about this.
_POLL_MS = 1000


class StoreNotReady(FeedError):
    """The worker has not read a feeds topic to its end yet."""


class CompactedView:
    """Key -> (record, partition) of one compacted topic, as of what this worker has read."""

    def __init__(self, kafka: KafkaSettings, topic: str, send: Send | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self._send = send
        self.records: dict[str, Record] = {}
        self.partitions: dict[str, int] = {}
        self.on_record: Callable[[str, Record | None], None] | None = None
        self.follower = TopicFollower(
            kafka, [topic], self._follow, poll_ms=_POLL_MS, name=f"feeds view of {topic}"
        )

    @property
    def is_ready(self) -> bool:
        return self.follower.caught_up.is_set()

    async def ready(self) -> None:
        if not await self.follower.wait_caught_up():
            raise StoreNotReady(
                f"the topic {self.topic!r} was not read within {READY_TIMEOUT_S:.0f} s: "
                f"check the broker at {self.kafka.bootstrap}"
            )

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
        await self.follower.run()

    def _follow(self, message: Message) -> None:
        decoded = _decode(message.key, message.value)
        if decoded is not None:
            self.apply(decoded[0], decoded[1], message.partition)


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


async def read_topic(kafka: KafkaSettings, topic: str) -> dict[str, Record]:
    """Read a compacted topic to its current end once (the CLI's view): key -> record."""
    records: dict[str, Record] = {}

    def keep(message: Message) -> None:
        decoded = _decode(message.key, message.value)
        if decoded is None:
            return
        if decoded[1] is None:
            records.pop(decoded[0], None)
        else:
            records[decoded[0]] = decoded[1]

    await read_to_end(kafka, [topic], keep)
    return records
