"""Create the pipeline's topics before a worker subscribes or a producer writes."""

from __future__ import annotations

import contextlib

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from config.settings import Settings
from streams.engine.validation import derived_record_max_bytes
from streams.exceptions import BrokerUnavailable
from streams.kafka.connection import KafkaConnection
from streams.kafka.diagnosis import check_connection

__all__ = ["ensure_topics", "pipeline_topic_partitions"]


def pipeline_topic_partitions(settings: Settings) -> dict[str, int]:
    """Each topic's partition count: only ``articles`` is spread (embedding scales out);
    ``articles-embedded`` must stay at one so clustering sees every article in order."""
    return {
        settings.topic_articles: settings.articles_partitions,
        settings.topic_dlq: 1,
        settings.topic_embedded: 1,
        settings.topic_stories: 1,
        settings.topic_alerts: 1,
        settings.topic_deliveries: 1,
        settings.topic_alerts_dlq: 1,
        settings.topic_subscriptions: 1,
        settings.topic_feeds: settings.feed_partitions,
        settings.topic_feed_state: 1,
        settings.topic_feed_seen: 1,
    }


def ensure_topics(bootstrap: str, settings: Settings) -> list[str]:
    """Create the missing pipeline topics (``STORYWATCH_REPLICATION_FACTOR`` replicas each,
    ``STORYWATCH_MIN_INSYNC_REPLICAS`` of them needed for a write); returns the names created."""
    connection = KafkaConnection.from_settings(settings, bootstrap)
    try:
        admin = connection.admin(client_id="storywatch-admin", request_timeout_ms=30_000)
    except KafkaError:
        check_connection(connection)  # names the setting to fix when TLS or the login fails
        raise BrokerUnavailable(
            f"cannot reach Kafka at {bootstrap} ({connection.describe()}): run "
            "`storywatch kafka start` or fix STORYWATCH_KAFKA_BOOTSTRAP"
        ) from None
    try:
        existing = set(admin.list_topics())
        derived = derived_record_max_bytes(settings)
        history = {"retention.ms": str(int(settings.articles_retention_days * 86_400_000))}
        configs = {
            settings.topic_articles: history,
            # Room for the largest record the size budget allows (Kafka's default is 1 MB).
            settings.topic_embedded: {**history, "max.message.bytes": str(derived)},
            settings.topic_stories: {"max.message.bytes": str(derived)},
            settings.topic_dlq: {"max.message.bytes": str(settings.dlq_max_message_bytes)},
            # The subscriptions themselves: the latest record per id, kept for good.
            settings.topic_subscriptions: {"cleanup.policy": "compact"},
            # The feeds and their poll state: the latest record per feed, kept for good.
            settings.topic_feeds: {"cleanup.policy": "compact"},
            settings.topic_feed_state: {"cleanup.policy": "compact"},
            # Seen article ids: the latest per id, forgotten after the retention setting.
            settings.topic_feed_seen: {
                "cleanup.policy": "compact,delete",
                "retention.ms": str(int(settings.feed_seen_retention_days * 86_400_000)),
            },
        }
        durable = (
            {"min.insync.replicas": str(settings.min_insync_replicas)}
            if settings.min_insync_replicas > 1
            else {}
        )
        replication = settings.replication_factor
        missing = [
            NewTopic(
                name, partitions, replication, topic_configs={**durable, **configs.get(name, {})}
            )
            for name, partitions in pipeline_topic_partitions(settings).items()
            if name not in existing
        ]
        if missing:
            # another worker may have created one meanwhile
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        admin.close()
