"""One poll of one feed, and which feeds are due: the ingest stage, without Faust.

A poll fetches (conditional GET), parses, drops the items already seen (by article id, i.e.
canonical URL, across every feed), sends the new articles and waits for the broker, marks them
seen, and only then writes the feed's new state (validators, next poll, health). A crash before
the state is written re-polls with the old validators: nothing is lost; articles already sent
come again with the same ids (the cluster stage drops exact re-sends by id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.feeds.errors import FeedError, FeedGone, FeedParseError, InvalidFeedUrl
from streams.feeds.fetcher import (
    FetchOutcome,
    FetchResult,
    PageFetcher,
    StatusError,
    outcome_of,
)
from streams.feeds.language import LanguageDetector
from streams.feeds.metrics import FeedMetrics
from streams.feeds.model import FeedDef
from streams.feeds.parsing import ParsedFeed, item_to_article, parse_feed
from streams.feeds.state import FeedState

__all__ = ["Converted", "FeedPoller", "due_feeds"]

logger = logging.getLogger(__name__)

Article = dict[str, Any]
SendArticles = Callable[[list[Article]], Awaitable[None]]
MarkSeen = Callable[[list[str], str, float], Awaitable[None]]
WriteState = Callable[[FeedState], Awaitable[None]]
Enrich = Callable[[Article], Awaitable[Article]]


@dataclass(frozen=True, slots=True)
class Converted:
    feed: ParsedFeed
    articles: list[Article]
    invalid: int


def due_feeds(
    feeds: Iterable[FeedDef],
    states: dict[str, FeedState],
    *,
    partitions: dict[str, int],
    assigned: set[int],
    busy: set[str],
    now: float,
) -> list[FeedDef]:
    """The feeds of the assigned partitions whose next poll has come (or, retired, that were
    added again since), most overdue first."""
    due = []
    for feed in feeds:
        if feed.id in busy or partitions.get(feed.id) not in assigned:
            continue
        state = states.get(feed.id)
        if state is None or state.next_poll <= now:
            due.append((state.next_poll if state else 0.0, feed))
        elif state.status == "retired" and feed.added_at > (state.last_poll or 0.0):
            due.append((0.0, feed))  # a retired (410) feed added again: try it once more
    return [feed for _, feed in sorted(due, key=lambda pair: pair[0])]


class FeedPoller:
    """Polls feeds through ``fetcher``; the caller passes in how articles, seen ids and
    states reach Kafka (each awaits the broker's acknowledgement)."""

    def __init__(
        self,
        *,
        fetcher: PageFetcher,
        metrics: FeedMetrics,
        default_interval_s: float,
        is_seen: Callable[[str], bool],
        send_articles: SendArticles,
        mark_seen: MarkSeen,
        write_state: WriteState,
        detector: LanguageDetector | None = None,
        enrich: Enrich | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fetcher = fetcher
        self.metrics = metrics
        self.default_interval_s = default_interval_s
        self.is_seen = is_seen
        self.send_articles = send_articles
        self.mark_seen = mark_seen
        self.write_state = write_state
        self.detector = detector
        self.enrich = enrich
        self.clock = clock
        # Ids that a poll in flight on this worker is producing: another feed carrying the
        # same article at the same moment skips it (released once marked seen, or on failure:
        # the claiming feed's state did not advance, so its next poll sends it).
        self._claimed: set[str] = set()

    async def poll(self, feed: FeedDef, state: FeedState | None) -> FeedState:
        """Poll ``feed`` once; answers (and has written) its new state. Never raises for a
        broken feed: the error becomes the feed's health."""
        state = state or FeedState(feed.id)
        interval = feed.interval_s or self.default_interval_s
        started = self.clock()
        result: FetchResult | None = None
        try:
            result = await self.fetcher.fetch(feed.url, state.validators)
        except FeedGone as exc:
            return await self._failed(feed, state, interval, exc, retired=True)
        except StatusError as exc:
            return await self._failed(feed, state, interval, exc, retry_after=exc.retry_after_s)
        except FeedError as exc:
            return await self._failed(feed, state, interval, exc)
        finally:
            self.metrics.fetch_duration.observe(max(self.clock() - started, 0.0))
        outcome: FetchOutcome = outcome_of(None, result)
        self.metrics.fetches.labels(outcome).inc()
        if result.not_modified or result.body is None:
            new_state = state.succeeded(
                self.clock(),
                interval_s=interval,
                outcome=outcome,
                validators=result.validators,
                new_items=0,
                max_age_s=result.max_age_s,
            )
            return await self._write(feed, new_state)
        try:
            converted = await asyncio.to_thread(self._convert, feed, result)
        except FeedParseError as exc:
            return await self._failed(feed, state, interval, exc)
        claimed: list[str] = []
        try:
            fresh, seen = await self._fresh(converted, claimed)
            if fresh:
                await self.send_articles(fresh)  # acknowledged by the broker (acks=all)
            if seen:
                await self.mark_seen(seen, feed.id, self.clock())
        finally:
            self._claimed.difference_update(claimed)
        new_state = state.succeeded(
            self.clock(),
            interval_s=interval,
            outcome=outcome,
            validators=result.validators,
            new_items=len(fresh),
            max_age_s=result.max_age_s,
            ttl_s=converted.feed.ttl_s,
            title=converted.feed.title,
        )
        return await self._write(feed, new_state)

    def _convert(self, feed: FeedDef, result: FetchResult) -> Converted:
        assert result.body is not None
        parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
        articles, invalid = [], 0
        for item in parsed.items:
            try:
                articles.append(
                    item_to_article(
                        item,
                        feed_id=feed.id,
                        feed_title=feed.name or parsed.title,
                        feed_url=result.url,
                        detector=self.detector,
                    )
                )
            except (InvalidFeedUrl, FeedParseError):
                invalid += 1
        return Converted(parsed, articles, invalid)

    async def _fresh(
        self, converted: Converted, claimed: list[str]
    ) -> tuple[list[Article], list[str]]:
        """The articles not seen before, and every id to mark seen (a feed item's id and,
        when its page names another canonical URL, that one's: the page is fetched once)."""
        self.metrics.items.labels("invalid").inc(converted.invalid)
        fresh: list[Article] = []
        ids: set[str] = set()
        aliases: list[str] = []
        for candidate in converted.articles:
            if self._taken(candidate["id"], ids):
                self.metrics.items.labels("duplicate").inc()
                continue
            self._claim(candidate["id"], claimed)
            article = candidate if self.enrich is None else await self.enrich(candidate)
            if article["id"] != candidate["id"]:
                aliases.append(candidate["id"])
                if self._taken(article["id"], ids):
                    # The page's canonical link named an article already seen.
                    self.metrics.items.labels("duplicate").inc()
                    continue
            self._claim(article["id"], claimed)
            ids.add(article["id"])
            fresh.append(article)
        self.metrics.items.labels("new").inc(len(fresh))
        return fresh, [*aliases, *(a["id"] for a in fresh)]

    def _claim(self, article_id: str, claimed: list[str]) -> None:
        if article_id not in self._claimed:
            self._claimed.add(article_id)
            claimed.append(article_id)

    def _taken(self, article_id: str, ids: set[str]) -> bool:
        return article_id in ids or article_id in self._claimed or self.is_seen(article_id)

    async def _failed(
        self,
        feed: FeedDef,
        state: FeedState,
        interval: float,
        exc: FeedError,
        *,
        retry_after: float | None = None,
        retired: bool = False,
    ) -> FeedState:
        outcome = outcome_of(exc)  # a body that is no feed counts as an error
        self.metrics.fetches.labels(outcome).inc()
        logger.info("feed %s (%s): %s", feed.id, feed.url, exc)
        new_state = state.failed(
            self.clock(),
            interval_s=interval,
            outcome=outcome,
            error=str(exc),
            retry_after_s=retry_after,
            retired=retired,
        )
        return await self._write(feed, new_state)

    async def _write(self, feed: FeedDef, new_state: FeedState) -> FeedState:
        await self.write_state(new_state)
        if new_state.last_success is not None:
            self.metrics.succeeded(feed.id, new_state.last_success)
        return new_state
