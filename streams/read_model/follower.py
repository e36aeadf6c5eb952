"""Feed the read model from Kafka on every worker: ``stories`` and ``alerts`` read from their
start, then followed, through broker restarts (streams/kafka/follower.py). Started with the
worker (``app.task``), never at import."""

from __future__ import annotations

import logging
from collections.abc import Callable

from config.groups import KafkaSettings, TopicSettings
from streams.kafka.follower import Message, TopicFollower
from streams.kafka.readers import decode_json_object
from streams.read_model.model import StoryReadModel

__all__ = ["ReadModelFollower"]

logger = logging.getLogger(__name__)

# Why 500 ms: a story event reaches the page within about this after it is on the topic.
_POLL_MS = 500


class ReadModelFollower:
    """Reads the two topics into ``model``; on a broker error resumes where it stopped."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        model: StoryReadModel,
        on_caught_up: Callable[[], None] | None = None,
    ):
        self.model = model
        self._stories = topics.topic_stories
        self._on_caught_up = on_caught_up
        self.follower = TopicFollower(
            kafka,
            [topics.topic_stories, topics.topic_alerts],
            self._apply,
            poll_ms=_POLL_MS,
            name="dashboard read model",
            on_caught_up=self._caught_up,
        )

    async def run(self) -> None:
        await self.follower.run()

    def _apply(self, message: Message) -> None:
        value = decode_json_object(message.value)
        if value is None:
            return
        if message.topic == self._stories:
            self.model.apply_story_event(value)
        else:
            self.model.apply_alert(value)

    def _caught_up(self) -> None:
        self.model.live = True
        logger.info("dashboard read model: %d active stories", len(self.model))
        if self._on_caught_up is not None:
            self._on_caught_up()
