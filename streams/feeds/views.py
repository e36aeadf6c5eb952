"""The three feed topics as this worker sees them: the feeds, their poll state and the article
ids already produced (each a :class:`CompactedView`), and the Kafka writes of a poll."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from config.groups import KafkaSettings, TopicSettings
from streams.feeds.model import FeedDef
from streams.feeds.state import DAY_S, FeedState
from streams.feeds.store import CompactedView, Record

__all__ = ["FeedViews", "SendRaw"]

# (topic, key bytes, value bytes or None) -> a future of the broker's acknowledgement.
SendRaw = Callable[[str, bytes, bytes | None], Awaitable[Awaitable[Any]]]


class FeedViews:
    """Built once per worker (streams/pipeline.py); its ``run`` tasks follow the topics."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, send: SendRaw) -> None:
        self.topics = topics
        self._send_raw = send
        self.feeds = CompactedView(kafka, topics.topic_feeds)
        self.states = CompactedView(kafka, topics.topic_feed_state, self._send_one)
        self.seen = CompactedView(kafka, topics.topic_feed_seen, self._send_one)
        self._retention_s = topics.feed_seen_retention_days * DAY_S

    @property
    def views(self) -> tuple[CompactedView, ...]:
        return (self.feeds, self.states, self.seen)

    @property
    def is_ready(self) -> bool:
        return all(view.is_ready for view in self.views)

    async def ready(self) -> None:
        for view in self.views:
            await view.ready()

    async def _send_one(self, topic: str, key: str, record: Record | None) -> None:
        value = None if record is None else json.dumps(record).encode()
        await (await self._send_raw(topic, key.encode(), value))

    def feed_defs(self) -> list[FeedDef]:
        found = []
        for record in list(self.feeds.records.values()):
            try:
                found.append(FeedDef.from_record(record))
            except (KeyError, TypeError, ValueError):
                continue  # not written by `storywatch feeds`: ignored
        return found

    def state_of(self, feed_id: str) -> FeedState | None:
        record = self.states.records.get(feed_id)
        if record is None:
            return None
        try:
            return FeedState.from_record(record)
        except (TypeError, ValueError):
            return None

    def all_states(self) -> dict[str, FeedState]:
        found = {}
        for key in list(self.states.records):
            state = self.state_of(key)
            if state is not None:
                found[key] = state
        return found

    def is_seen(self, article_id: str) -> bool:
        record = self.seen.records.get(article_id)
        if record is None:
            return False
        return float(record.get("t") or 0.0) > time.time() - self._retention_s

    def prune_seen(self, now: float) -> int:
        """Forget ids older than the retention (the broker deletes them too)."""
        cutoff = now - self._retention_s
        old = [k for k, r in self.seen.records.items() if float(r.get("t") or 0.0) <= cutoff]
        for key in old:
            del self.seen.records[key]
        return len(old)

    async def send_articles(self, articles: list[dict[str, Any]]) -> None:
        """Send to ``articles`` and wait until the broker acknowledged every one (acks=all)."""
        acks = [
            await self._send_raw(
                self.topics.topic_articles, a["id"].encode(), json.dumps(a).encode()
            )
            for a in articles
        ]
        await asyncio.gather(*acks)

    async def mark_seen(self, ids: list[str], feed_id: str, when: float) -> None:
        acks = []
        for article_id in ids:
            record = {"t": when, "feed_id": feed_id}
            acks.append(
                await self._send_raw(
                    self.topics.topic_feed_seen, article_id.encode(), json.dumps(record).encode()
                )
            )
            self.seen.apply(article_id, record, None)
        await asyncio.gather(*acks)

    async def write_state(self, state: FeedState) -> None:
        await self.states.put(state.feed_id, state.to_record())
