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

from streams.app import app, feed_metrics, feed_views, settings
from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.fulltext import FullText
from streams.feeds.language import LanguageDetector
from streams.feeds.poller import FeedPoller, due_feeds

__all__ = ["feed_partitions", "poll_due_feeds"]

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

feeds_topic = app.topic(
    settings.topic_feeds,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.feed_partitions,
)


class _Poller:
    """The worker's poller; its HTTP session lives as long as the worker (``_http_session``)."""

    def __init__(self) -> None:
        self.poller: FeedPoller | None = None
        self.in_flight: dict[str, asyncio.Task[Any]] = {}
        self.cooling: dict[str, float] = {}  # feed id -> when its failed poll may run again
        self.pruned_at = 0.0

    def open(self, fetcher: PageFetcher) -> None:
        self.poller = FeedPoller(
            fetcher=fetcher,
            metrics=feed_metrics,
            default_interval_s=settings.feed_poll_s,
            is_seen=feed_views.is_seen,
            send_articles=feed_views.send_articles,
            mark_seen=feed_views.mark_seen,
            write_state=feed_views.write_state,
            detector=LanguageDetector(),
            enrich=FullText(fetcher, feed_metrics, settings.feed_teaser_chars).enrich,
        )


_poller = _Poller()


@app.task
async def _http_session() -> None:
    """Open the guarded HTTP session when the worker starts; close it when it stops."""
    policy = FetchPolicy.from_settings(settings.feeds)
    async with PageFetcher(policy, feed_guard(settings.feed_allowed_hosts)) as fetcher:
        _poller.open(fetcher)
        try:
            await asyncio.Event().wait()  # until the worker stops (the task is cancelled)
        finally:
            _poller.poller = None


@app.agent(feeds_topic)
async def feed_partitions(stream: StreamT[bytes]) -> None:
    """Holds the feeds partitions this worker is assigned; the records themselves are read
    by every worker's view of the topic."""
    async for _record in stream:
        pass


def _assigned() -> set[int]:
    return {
        tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic_feeds
    }


@app.timer(_TICK_S)
async def poll_due_feeds() -> None:
    """Start a poll for each due feed of this worker's partitions (bounded in flight)."""
    poller = _poller.poller
    if poller is None or not feed_views.is_ready:
        return
    now = time.time()
    assigned = _assigned()
    if now - _poller.pruned_at > _PRUNE_S:
        feed_views.prune_seen(now)
        _poller.pruned_at = now
        partitions = feed_views.feeds.partitions
        feed_metrics.keep_only(
            {f.id for f in feed_views.feed_defs() if partitions.get(f.id) in assigned}
        )
    room = _CONCURRENCY - len(_poller.in_flight)
    if room <= 0:
        return
    due = due_feeds(
        feed_views.feed_defs(),
        feed_views.all_states(),
        partitions=feed_views.feeds.partitions,
        assigned=assigned,
        busy={*_poller.in_flight, *(k for k, t in _poller.cooling.items() if t > now)},
        now=now,
    )
    for feed in due[:room]:
        task = asyncio.create_task(_poll_one(poller, feed), name=f"feed-{feed.id}")
        _poller.in_flight[feed.id] = task


async def _poll_one(poller: FeedPoller, feed: Any) -> None:
    try:
        await poller.poll(feed, feed_views.state_of(feed.id))
    except asyncio.CancelledError:
        raise
    except Exception:  # a Kafka write failed: the state did not advance, polled again soon
        logger.exception("poll of feed %s (%s) did not complete; retried", feed.id, feed.url)
        _poller.cooling[feed.id] = time.time() + _RETRY_S
    finally:
        _poller.in_flight.pop(feed.id, None)
