"""One way to build a plain reader of a topic outside Faust's consumer group (the alert
history, the subscriptions every worker reads): no group, nothing committed, and the same
credentials as the Faust app."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from config.settings import Settings

__all__ = ["group_free_consumer"]


def group_free_consumer(settings: Settings) -> AIOKafkaConsumer:
    """An unstarted consumer that reads partitions it is assigned, from the earliest kept
    offset unless told to seek; SASL/PLAIN when ``STORYWATCH_KAFKA_SASL_*`` is set."""
    credentials: dict[str, Any] = {}
    if settings.kafka_sasl_username and settings.kafka_sasl_password:
        credentials = {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **credentials,
    )
