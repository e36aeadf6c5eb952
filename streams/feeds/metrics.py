"""The feed poller's Prometheus metrics, on a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FeedMetrics"]

# Why these buckets: a 304 from a nearby server takes ~10 ms, a big feed over a slow link a few
# seconds, and the total timeout ends a fetch at 60 s by default.
_FETCH_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FETCH_OUTCOMES = ("ok", "not_modified", "error", "refused", "too_large", "timeout")
ITEM_RESULTS = ("new", "duplicate", "invalid")


class FeedMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fetches = Counter(
            "storywatch_feed_fetches",
            "Feed fetches, by outcome (ok, not_modified, error, refused, too_large, timeout).",
            ["outcome"],
            registry=registry,
        )
        self.items = Counter(
            "storywatch_feed_items",
            "Feed items, by result (new: produced to articles; duplicate: seen before; "
            "invalid: no link, or neither title nor text).",
            ["result"],
            registry=registry,
        )
        self.last_success = Gauge(
            "storywatch_feed_last_success_timestamp_seconds",
            "When each feed polled by this worker last answered (200 or 304), epoch seconds.",
            ["feed_id"],
            registry=registry,
        )
        self.fetch_duration = Histogram(
            "storywatch_feed_fetch_duration_seconds",
            "Time of one feed fetch, redirects included.",
            buckets=_FETCH_SECONDS,
            registry=registry,
        )
        self.pages = Counter(
            "storywatch_feed_pages",
            "Article pages fetched for the full text of a teaser, by outcome "
            "(ok, refused_robots, error).",
            ["outcome"],
            registry=registry,
        )
        self._reported: set[str] = set()
        for outcome in FETCH_OUTCOMES:
            self.fetches.labels(outcome)
        for result in ITEM_RESULTS:
            self.items.labels(result)

    def succeeded(self, feed_id: str, when: float) -> None:
        self.last_success.labels(feed_id).set(when)
        self._reported.add(feed_id)

    def keep_only(self, feed_ids: set[str]) -> None:
        """Drop the last-success series of feeds this worker no longer polls (removed, or
        their partition moved): a stale series would fire StorywatchFeedStale for nothing."""
        for gone in self._reported - feed_ids:
            self.last_success.remove(gone)
        self._reported &= feed_ids
