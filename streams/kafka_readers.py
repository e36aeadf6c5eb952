"""One way to build a plain reader of a topic outside Faust's consumer group (the alert
history, the subscriptions every worker reads): no group, nothing committed, and the same
credentials as the Faust app."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from config.settings import Settings

__all__ = ["group_free_consumer"]


def group_free_consumer(settings: Settings) -> AIOKafkaConsumer:
    """An unstarted consumer that reads partitions it is assigned, from the earliest kept
    offset unless told to seek; SASL/PLAIN when ``STORYWATCH_KAFKA_SASL_*`` is set."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **settings.kafka_client_auth,
    )
