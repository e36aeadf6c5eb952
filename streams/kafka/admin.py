"""Create the pipeline's topics before a worker subscribes or a producer writes."""

from __future__ import annotations

import contextlib

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from config.groups import EmbedSettings, KafkaSettings, TopicSettings
from streams.engine.validation import derived_record_max_bytes
from streams.exceptions import BrokerUnavailable
from streams.kafka.connection import KafkaConnection
from streams.kafka.diagnosis import check_connection

__all__ = ["ensure_topics", "pipeline_topic_partitions"]


def pipeline_topic_partitions(topics: TopicSettings) -> dict[str, int]:
    """Each topic's partition count: only ``articles`` is spread (embedding scales out);
    ``articles-embedded`` must stay at one so clustering sees every article in order."""
    return {
        topics.topic_articles: topics.articles_partitions,
        topics.topic_dlq: 1,
        topics.topic_embedded: 1,
        topics.topic_stories: 1,
        topics.topic_alerts: 1,
        topics.topic_deliveries: 1,
        topics.topic_alerts_dlq: 1,
        topics.topic_subscriptions: 1,
        topics.topic_feeds: topics.feed_partitions,
        topics.topic_feed_state: 1,
        topics.topic_feed_seen: 1,
    }


def ensure_topics(
    bootstrap: str, kafka: KafkaSettings, topics: TopicSettings, embed: EmbedSettings
) -> list[str]:
    """Create the missing pipeline topics (``STORYWATCH_REPLICATION_FACTOR`` replicas each,
    ``STORYWATCH_MIN_INSYNC_REPLICAS`` of them needed for a write); returns the names created.
    ``embed``: the embed stage's size budget, which the derived topics must hold."""
    connection = KafkaConnection.from_settings(kafka, bootstrap)
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
        derived = derived_record_max_bytes(embed)
        history = {"retention.ms": str(int(topics.articles_retention_days * 86_400_000))}
        configs = {
            topics.topic_articles: history,
            # Room for the largest record the size budget allows (Kafka's default is 1 MB).
            topics.topic_embedded: {**history, "max.message.bytes": str(derived)},
            topics.topic_stories: {"max.message.bytes": str(derived)},
            topics.topic_dlq: {"max.message.bytes": str(topics.dlq_max_message_bytes)},
            # The subscriptions themselves: the latest record per id, kept for good.
            topics.topic_subscriptions: {"cleanup.policy": "compact"},
            # The feeds and their poll state: the latest record per feed, kept for good.
            topics.topic_feeds: {"cleanup.policy": "compact"},
            topics.topic_feed_state: {"cleanup.policy": "compact"},
            # Seen article ids: the latest per id, forgotten after the retention setting.
            topics.topic_feed_seen: {
                "cleanup.policy": "compact,delete",
                "retention.ms": str(int(topics.feed_seen_retention_days * 86_400_000)),
            },
        }
        durable = (
            {"min.insync.replicas": str(kafka.min_insync_replicas)}
            if kafka.min_insync_replicas > 1
            else {}
        )
        replication = kafka.replication_factor
        missing = [
            NewTopic(
                name, partitions, replication, topic_configs={**durable, **configs.get(name, {})}
            )
            for name, partitions in pipeline_topic_partitions(topics).items()
            if name not in existing
        ]
        if missing:
            # another worker may have created one meanwhile
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        admin.close()
