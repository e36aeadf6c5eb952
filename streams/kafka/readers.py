"""One way to build a plain reader of a topic outside Faust's consumer group (the alert
history, the subscriptions every worker reads): no group, nothing committed, and the same
credentials as the Faust app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from config.settings import Settings
from streams.kafka.connection import KafkaConnection

__all__ = ["decode_json_object", "group_free_consumer", "topic_partitions"]


def group_free_consumer(settings: Settings) -> AIOKafkaConsumer:
    """An unstarted consumer that reads partitions it is assigned, from the earliest kept
    offset unless told to seek; TLS and the login as the settings say."""
    return KafkaConnection.from_settings(settings).aio_consumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` (a started consumer's metadata arrives shortly after its
    start: asked again for up to 5 s); empty if the topic does not exist."""
    found = consumer.partitions_for_topic(topic)
    for _ in range(50):
        if found:
            return set(found)
        await asyncio.sleep(0.1)
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    return set()


def decode_json_object(raw: bytes | None) -> dict[str, Any] | None:
    """A record value that is a JSON object, else None (a tombstone, or not JSON)."""
    try:
        value = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
