"""A feed and its poll state as one health row (the CLI's `feeds list` and GET /api/feeds)."""

from __future__ import annotations

import math
from typing import Any

from streams.feeds.model import FeedDef
from streams.feeds.state import FeedState
from streams.time_ranges import iso_time

__all__ = ["feed_health", "iso_or_none"]


def iso_or_none(when: float | None) -> str | None:
    if when is None or not math.isfinite(when):
        return None
    return iso_time(when, precision="s")


def feed_health(feed: FeedDef, state: FeedState | None, now: float) -> dict[str, Any]:
    """One JSON-ready row: the feed, its status and its last success, error and next poll."""
    state = state or FeedState(feed.id)
    return {
        "id": feed.id,
        "url": feed.url,
        "name": feed.name or state.title,
        "interval_s": feed.interval_s,
        "status": state.status,
        "last_success": iso_or_none(state.last_success),
        "last_error": state.last_error,
        "last_error_at": iso_or_none(state.last_error_at),
        "last_outcome": state.last_outcome,
        "failures": state.failures,
        "items_last_day": state.items_last_day(now),
        "next_poll": iso_or_none(state.next_poll) if state.last_poll is not None else "due",
    }
