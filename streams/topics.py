"""The Kafka topics of the pipeline, declared on the Faust app from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from config.settings import Settings
from streams.records import EmbeddedArticle, StoryEvent

__all__ = ["PipelineTopics", "declare_topics"]


@dataclass(frozen=True)
class PipelineTopics:
    articles: faust.TopicT
    dlq: faust.TopicT
    embedded: faust.TopicT
    stories: faust.TopicT
    alerts: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> PipelineTopics:
    """Declare the five topics. ``articles`` is raw bytes, so invalid input reaches the DLQ
    untouched; ``articles-embedded`` has ONE partition: clustering must see every article."""
    return PipelineTopics(
        articles=app.topic(
            settings.topic_articles,
            key_type=bytes,
            value_type=bytes,
            value_serializer="raw",
            key_serializer="raw",
            partitions=settings.articles_partitions,
        ),
        dlq=app.topic(settings.topic_dlq, value_serializer="json", partitions=1),
        embedded=app.topic(settings.topic_embedded, value_type=EmbeddedArticle, partitions=1),
        stories=app.topic(settings.topic_stories, value_type=StoryEvent, partitions=1),
        alerts=app.topic(settings.topic_alerts, value_serializer="json", partitions=1),
    )
