"""When a feed is polled next: its interval, never below what the server asked, backing off
while it fails. Pure functions of the poll's outcome."""

from __future__ import annotations

__all__ = ["MAX_BACKOFF_S", "next_delay"]

# Why 6 h: a feed failing for a day is retried 4 times a day, enough to notice its return
# without hammering a server that is down or asked us to slow down.
MAX_BACKOFF_S = 6 * 3600.0
# Why 2**6: six failures in a row double the interval up to 64x (5 min -> 5.3 h), then the cap.
_MAX_DOUBLINGS = 6


def next_delay(
    interval_s: float,
    *,
    failures: int = 0,
    retry_after_s: float | None = None,
    max_age_s: float | None = None,
    ttl_s: float | None = None,
) -> float:
    """Seconds until the next poll: ``interval_s`` doubled per consecutive failure (capped at
    ``MAX_BACKOFF_S``), never below Retry-After, Cache-Control max-age or the RSS ttl."""
    delay = interval_s
    if failures > 0:
        delay = min(interval_s * 2 ** min(failures, _MAX_DOUBLINGS), max(MAX_BACKOFF_S, interval_s))
    floors = [f for f in (retry_after_s, max_age_s, ttl_s) if f is not None and f > 0]
    return max([delay, *floors])
