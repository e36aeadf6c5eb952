"""Agent: poll the feeds of the partitions Kafka assigned to this worker.

The ``feeds`` topic is consumed by the app's group only so that Kafka shares its partitions
among the workers; every worker knows every feed (streams/feeds/views.py) and a timer polls
those whose partition is assigned here and whose next poll has come. N workers share the
feeds; a worker that dies hands its partitions, with their state already on the feed-state
topic, to the others. Each poll is the ingest stage of streams/feeds/poller.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust import StreamT

from agents.glue import StageAgent
from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.fulltext import FullText
from streams.feeds.language import LanguageDetector
from streams.feeds.poller import FeedPoller, due_feeds
from streams.pipeline import Pipeline

__all__ = ["FeedAgent", "register"]

logger = logging.getLogger(__name__)

# Why 1 s: a feed is polled within about a second of its due time, and a tick that finds
# nothing due costs a scan of the feed list in memory.
_TICK_S = 1.0
# Why 32: polls in flight at once on one worker; each mostly waits on the network, and one
# host gets one request at a time anyway. 1,000 feeds of 5 min need ~3.3 polls/s.
_CONCURRENCY = 32
# Why 30 s: a poll whose Kafka write failed is tried again after this, not on every tick.
_RETRY_S = 30.0
# Why 10 min: how often the seen ids past their retention are dropped from memory.
_PRUNE_S = 600.0


class FeedAgent(StageAgent):
    """The worker's poller; its HTTP session lives as long as the worker
    (:meth:`http_session`)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self.feeds = pipeline.settings.feeds
        self.feeds_topic = pipeline.settings.topics.topic_feeds
        self.feed_views = pipeline.feed_views
        self.feed_metrics = pipeline.feed_metrics
        self.poller: FeedPoller | None = None
        self.in_flight: dict[str, asyncio.Task[Any]] = {}
        self.cooling: dict[str, float] = {}  # feed id -> when its failed poll may run again
        self.pruned_at = 0.0

    def open(self, fetcher: PageFetcher) -> None:
        feeds, views = self.feeds, self.feed_views
        self.poller = FeedPoller(
            fetcher=fetcher,
            metrics=self.feed_metrics,
            default_interval_s=feeds.feed_poll_s,
            is_seen=views.is_seen,
            send_articles=views.send_articles,
            mark_seen=views.mark_seen,
            write_state=views.write_state,
            detector=LanguageDetector(),
            enrich=FullText(fetcher, self.feed_metrics, feeds.feed_teaser_chars).enrich,
        )

    async def http_session(self) -> None:
        """Open the guarded HTTP session when the worker starts; close it when it stops."""
        policy = FetchPolicy.from_settings(self.feeds)
        async with PageFetcher(policy, feed_guard(self.feeds.allowed_hosts)) as fetcher:
            self.open(fetcher)
            try:
                await asyncio.Event().wait()  # until the worker stops (the task is cancelled)
            finally:
                self.poller = None

    async def feed_partitions(self, stream: StreamT[bytes]) -> None:
        """Holds the feeds partitions this worker is assigned; the records themselves are
        read by every worker's view of the topic."""
        async for _record in stream:
            pass

    def _assigned(self) -> set[int]:
        topic = self.feeds_topic
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def poll_due_feeds(self) -> None:
        """Start a poll for each due feed of this worker's partitions (bounded in flight)."""
        poller, views = self.poller, self.feed_views
        if poller is None or not views.is_ready:
            return
        now = time.time()
        assigned = self._assigned()
        if now - self.pruned_at > _PRUNE_S:
            views.prune_seen(now)
            self.pruned_at = now
            partitions = views.feeds.partitions
            self.feed_metrics.keep_only(
                {f.id for f in views.feed_defs() if partitions.get(f.id) in assigned}
            )
        room = _CONCURRENCY - len(self.in_flight)
        if room <= 0:
            return
        due = due_feeds(
            views.feed_defs(),
            views.all_states(),
            partitions=views.feeds.partitions,
            assigned=assigned,
            busy={*self.in_flight, *(k for k, t in self.cooling.items() if t > now)},
            now=now,
        )
        for feed in due[:room]:
            task = asyncio.create_task(self._poll_one(poller, feed), name=f"feed-{feed.id}")
            self.in_flight[feed.id] = task

    async def _poll_one(self, poller: FeedPoller, feed: Any) -> None:
        try:
            await poller.poll(feed, self.feed_views.state_of(feed.id))
        except asyncio.CancelledError:
            raise
        except Exception:  # a Kafka write failed: the state did not advance, polled again soon
            logger.exception("poll of feed %s (%s) did not complete; retried", feed.id, feed.url)
            self.cooling[feed.id] = time.time() + _RETRY_S
        finally:
            self.in_flight.pop(feed.id, None)


def register(pipeline: Pipeline) -> FeedAgent:
    """Declare the feeds agent, its HTTP session task and its poll timer, under their names
    from before the composition root."""
    topics, app = pipeline.settings.topics, pipeline.app
    agent = FeedAgent(pipeline)
    feeds_topic = app.topic(
        topics.topic_feeds,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.feed_partitions,
    )
    app.task(agent.http_session)  # started with the worker, cancelled when it stops
    agent.agent = app.agent(feeds_topic, name="agents.feeds.feed_partitions")(agent.feed_partitions)
    app.timer(_TICK_S, name="agents.feeds.poll_due_feeds")(agent.poll_due_feeds)
    return agent
