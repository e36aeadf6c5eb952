"""Fair shares of the HTTP side: caps on open SSE streams (per owner and per worker), on
concurrent alert-history reads, and a rate limit per owner (``/test``). Each refusal is a
429 with ``Retry-After`` and is counted by route and reason on ``/metrics``.
"""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.web.http import HttpError

__all__ = ["SSE_ROUTES", "HttpLimitMetrics", "RateLimit", "StreamSlots", "WorkGate"]

#: The ``route`` label of each SSE route: /api/events/stream, /api/alerts/stream.
SSE_ROUTES = ("events", "alerts")


class HttpLimitMetrics:
    """The limits' metric families, on the registry the caller passes in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sse_streams = Gauge(
            "storywatch_sse_streams",
            "Server-Sent Event streams open on this worker, by route.",
            ["route"],
            registry=registry,
        )
        for route in SSE_ROUTES:  # shown (as 0) before the first stream opens
            self.sse_streams.labels(route).set(0)
        self.refusals = Counter(
            "storywatch_http_refusals",
            "Requests refused with 429 by a fair-share limit, by route and reason.",
            ["route", "reason"],
            registry=registry,
        )


def too_many(retry_after_s: float, error: str, field: str) -> HttpError:
    """A 429 whose ``Retry-After`` says when to try again (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(retry_after_s))
    return HttpError(429, error, field, headers={"Retry-After": str(seconds)})


@dataclass
class StreamSlots:
    """Open SSE streams: at most ``total`` on this worker, ``per_owner`` for one owner."""

    total: int
    per_owner: int
    retry_after_s: int
    metrics: HttpLimitMetrics
    _open: Tally[str] = field(default_factory=Tally)
    _by_route: Tally[str] = field(default_factory=Tally)

    @property
    def open(self) -> int:
        return sum(self._open.values())

    @contextmanager
    def hold(self, route: str, owner: str) -> Iterator[None]:
        """One stream of ``owner`` on ``route`` while the block runs; 429 past a cap."""
        if self.open >= self.total:
            self.metrics.refusals.labels(route, "streams_total").inc()
            raise too_many(
                self.retry_after_s,
                f"this worker serves its cap of {self.total} open streams "
                "(STORYWATCH_SSE_MAX_STREAMS): retry after Retry-After seconds, or poll the "
                "JSON API meanwhile",
                "streams",
            )
        if self._open[owner] >= self.per_owner:
            self.metrics.refusals.labels(route, "streams_per_owner").inc()
            raise too_many(
                self.retry_after_s,
                f"you have {self.per_owner} streams open on this worker, the cap per owner "
                "(STORYWATCH_SSE_MAX_STREAMS_PER_OWNER): close one (each browser tab holds "
                "one) and retry",
                "streams",
            )
        self._open[owner] += 1
        self._by_route[route] += 1
        self.metrics.sse_streams.labels(route).set(self._by_route[route])
        try:
            yield
        finally:
            self._open[owner] -= 1
            if not self._open[owner]:
                del self._open[owner]
            self._by_route[route] -= 1
            self.metrics.sse_streams.labels(route).set(self._by_route[route])


@dataclass
class WorkGate:
    """At most ``limit`` requests of one kind at once (each costs a Kafka consumer)."""

    limit: int
    route: str
    retry_after_s: int
    metrics: HttpLimitMetrics
    running: int = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        if self.running >= self.limit:
            self.metrics.refusals.labels(self.route, "concurrency").inc()
            raise too_many(
                self.retry_after_s,
                f"{self.limit} requests of {self.route} are being served on this worker "
                "(STORYWATCH_ALERTS_HISTORY_CONCURRENCY): retry after Retry-After seconds",
                "concurrency",
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


@dataclass
class RateLimit:
    """A token bucket per key: ``per_minute`` requests in a burst, refilled at that rate."""

    per_minute: int
    route: str
    metrics: HttpLimitMetrics
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> None:
        """Spend one token of ``key``'s bucket; 429 with the wait until the next when empty."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self.metrics.refusals.labels(self.route, "rate").inc()
            raise too_many(
                (1.0 - tokens) / rate,
                f"{self.route} is limited to {self.per_minute} requests a minute per owner "
                "(STORYWATCH_API_TESTS_PER_MINUTE): retry after Retry-After seconds",
                "rate",
            )
        self._buckets[key] = (tokens - 1.0, now)
