"""One way to build a plain reader of a topic outside Faust's consumer group (a window of a
topic: streams/kafka/window.py; a topic followed into memory: streams/kafka/follower.py): no
group, nothing committed, and the same credentials as the Faust app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from config.groups import KafkaSettings
from streams.kafka.connection import KafkaConnection

__all__ = ["cluster_partitions", "decode_json_object", "group_free_consumer", "topic_partitions"]


def group_free_consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    """An unstarted consumer that reads partitions it is assigned, from the earliest kept
    offset unless told to seek; TLS and the login as the Kafka settings say."""
    return KafkaConnection.from_settings(kafka).aio_consumer(
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
        # A private client call (streams/kafka/overrides.py): aiokafka has no public refresh.
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    return set()


async def cluster_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` from a fresh fetch of the whole cluster's metadata (the
    consumer's own covers only what it was assigned); empty if the topic does not exist."""
    # A private client call (streams/kafka/overrides.py): `topics()` returns only the names.
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


def decode_json_object(raw: bytes | None) -> dict[str, Any] | None:
    """A record value that is a JSON object, else None (a tombstone, or not JSON)."""
    try:
        value = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
