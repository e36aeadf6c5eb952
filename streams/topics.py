"""The Kafka topics of the pipeline, declared on the Faust app from the topic settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import Message
from prometheus_client import Counter

from config.groups import TopicSettings
from streams.contracts.dead_letters import DeadLetters
from streams.contracts.records import EmbeddedArticle, StoryEvent
from streams.wire_json import WIRE_JSON

__all__ = ["DeadLetteringTopic", "PipelineTopics", "declare_topics"]


class DeadLetteringTopic(faust.Topic):
    """A topic whose undecodable records become dead letters instead of crashing the agent
    that reads it (Faust's default re-raises the error inside the agent's stream)."""

    def __init__(self, *args: Any, dead_letters: DeadLetters | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.dead_letters = dead_letters

    def _clone_args(self) -> Mapping[str, Any]:  # listed in streams/kafka/overrides.py
        # Agents read a clone of the topic: the clone must keep the dead-letter sender.
        return {**super()._clone_args(), "dead_letters": self.dead_letters}

    async def on_key_decode_error(self, exc: Exception, message: Message) -> None:
        await self._refuse("undecodable_key", exc, message)

    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        await self._refuse("undecodable", exc, message)

    async def _refuse(self, reason: str, exc: Exception, message: Message) -> None:
        if self.dead_letters is None:  # pragma: no cover - every declared topic has one
            await super().on_value_decode_error(exc, message)
            return
        await self.dead_letters.send(
            reason=reason,
            error=f"{type(exc).__name__}: {exc}; only Storywatch writes this topic: "
            "find the producer that wrote this record",
            stage=f"decode {message.topic}",
            message=message,
            value=message.value if isinstance(message.value, bytes) else None,
        )


@dataclass(frozen=True)
class PipelineTopics:
    articles: faust.TopicT
    dlq: faust.TopicT
    embedded: faust.TopicT
    stories: faust.TopicT
    alerts: faust.TopicT
    deliveries: faust.TopicT  # the webhook outbox (keyed by webhook-id)
    alerts_dlq: faust.TopicT  # deliveries parked after their last retry


def declare_topics(
    app: faust.App, topics: TopicSettings, refused: Counter
) -> tuple[PipelineTopics, DeadLetters]:
    """Declare the topics and the one dead-letter sender of every stage (``refused``
    counts dead letters by reason). ``articles`` is raw bytes, so invalid input reaches the
    DLQ untouched; ``articles-embedded`` has ONE partition: clustering must see every
    article."""
    dlq = app.topic(topics.topic_dlq, value_serializer=WIRE_JSON, partitions=1)
    dead_letters = DeadLetters(dlq, refused, topics.dlq_max_message_bytes)

    def decoded(name: str, value_type: type[faust.Record]) -> faust.TopicT:
        return DeadLetteringTopic(
            app, topics=[name], value_type=value_type, partitions=1, dead_letters=dead_letters
        )

    declared = PipelineTopics(
        articles=app.topic(
            topics.topic_articles,
            key_type=bytes,
            value_type=bytes,
            value_serializer="raw",
            key_serializer="raw",
            partitions=topics.articles_partitions,
        ),
        dlq=dlq,
        embedded=decoded(topics.topic_embedded, EmbeddedArticle),
        stories=decoded(topics.topic_stories, StoryEvent),
        alerts=app.topic(topics.topic_alerts, value_serializer=WIRE_JSON, partitions=1),
        deliveries=app.topic(topics.topic_deliveries, value_serializer=WIRE_JSON, partitions=1),
        alerts_dlq=app.topic(topics.topic_alerts_dlq, value_serializer=WIRE_JSON, partitions=1),
    )
    return declared, dead_letters
