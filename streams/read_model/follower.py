"""Feed the read model from Kafka on every worker: a consumer of its own (no group: every
worker reads every partition) reads ``stories`` and ``alerts`` from their start, then
follows them. Started with the worker (``app.task``), never at import."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config.exceptions import StorywatchError
from config.settings import Settings
from streams.kafka.readers import group_free_consumer, topic_partitions
from streams.read_model.model import StoryReadModel

__all__ = ["ReadModelFollower"]

logger = logging.getLogger(__name__)

# Why 500 ms: a story event reaches the page within about this after it is on the topic.
_POLL_MS = 500
# Why 5 s: a reader that lost the broker tries again this often (logged each time).
_RETRY_S = 5.0
# Why 1,000 records: one poll's worth applied before yielding to the web server, so a
# catch-up of millions of records never blocks requests for long.
_MAX_RECORDS = 1000


class TopicMissing(StorywatchError):
    """A topic the read model follows does not exist (yet)."""


def _decode(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


class ReadModelFollower:
    """Reads the two topics into ``model``; on a broker error resumes where it stopped."""

    def __init__(
        self,
        settings: Settings,
        model: StoryReadModel,
        on_caught_up: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.model = model
        self._positions: dict[TopicPartition, int] = {}
        self._on_caught_up = on_caught_up

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, TopicMissing) as exc:
                logger.warning("dashboard read model: %s; retrying in %.0f s", exc, _RETRY_S)
                await asyncio.sleep(_RETRY_S)

    async def _follow(self) -> None:
        consumer = group_free_consumer(self.settings)
        await consumer.start()
        try:
            stories, alerts = self.settings.topic_stories, self.settings.topic_alerts
            partitions = [
                TopicPartition(topic, p)
                for topic in (stories, alerts)
                for p in sorted(await _partitions(consumer, topic))
            ]
            consumer.assign(partitions)
            for tp in partitions:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(partitions)
            while True:
                batch = await consumer.getmany(
                    *partitions, timeout_ms=_POLL_MS, max_records=_MAX_RECORDS
                )
                for tp, records in batch.items():
                    for message in records:
                        value = _decode(message.value)
                        if isinstance(value, dict):
                            if tp.topic == stories:
                                self.model.apply_story_event(value)
                            else:
                                self.model.apply_alert(value)
                        self._positions[tp] = message.offset + 1
                if not self.model.live and await _caught_up(consumer, ends, self._positions):
                    self.model.live = True
                    logger.info("dashboard read model: %d active stories", len(self.model))
                    if self._on_caught_up is not None:
                        self._on_caught_up()
                await asyncio.sleep(0)
        finally:
            await consumer.stop()


async def _caught_up(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], read: dict[TopicPartition, int]
) -> bool:
    for tp, end in ends.items():
        if read.get(tp, 0) < end and await consumer.position(tp) < end:
            return False
    return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    found = await topic_partitions(consumer, topic)
    if not found:
        raise TopicMissing(f"topic {topic!r} does not exist yet: the worker creates it at start")
    return found
