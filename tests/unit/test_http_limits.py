"""The HTTP fair-share limits as pure logic: stream slots per owner and in total, the
history gate, the /test rate limit (429s with Retry-After, counted on a fresh registry)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from prometheus_client import CollectorRegistry

from streams.web.http import HttpError
from streams.web.limits import HttpLimitMetrics, RateLimit, StreamSlots, WorkGate


def _metrics() -> tuple[HttpLimitMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return HttpLimitMetrics(registry), registry


def test_stream_slots_cap_each_owner_and_the_worker() -> None:
    metrics, registry = _metrics()
    slots = StreamSlots(total=5, per_owner=2, retry_after_s=30, metrics=metrics)
    with ExitStack() as held:
        held.enter_context(slots.hold("events", "alice"))
        held.enter_context(slots.hold("alerts", "alice"))
        with pytest.raises(HttpError) as refused:
            held.enter_context(slots.hold("events", "alice"))
        assert (refused.value.status, refused.value.field) == (429, "streams")
        assert refused.value.headers == {"Retry-After": "30"}
        assert "STORYWATCH_SSE_MAX_STREAMS_PER_OWNER" in refused.value.error
        for owner in ("bob", "bob", "carol"):
            held.enter_context(slots.hold("events", owner))
        with pytest.raises(HttpError, match="STORYWATCH_SSE_MAX_STREAMS"):
            held.enter_context(slots.hold("events", "dave"))  # 5 open: the worker's cap
        assert registry.get_sample_value("storywatch_sse_streams", {"route": "events"}) == 4
        assert registry.get_sample_value("storywatch_sse_streams", {"route": "alerts"}) == 1
    assert slots.open == 0  # every slot comes back when its stream ends
    assert registry.get_sample_value("storywatch_sse_streams", {"route": "events"}) == 0
    refusals = {
        reason: registry.get_sample_value(
            "storywatch_http_refusals_total", {"route": "events", "reason": reason}
        )
        for reason in ("streams_per_owner", "streams_total")
    }
    assert refusals == {"streams_per_owner": 1, "streams_total": 1}


def test_a_stream_that_raises_gives_its_slot_back() -> None:
    metrics, _ = _metrics()
    slots = StreamSlots(total=1, per_owner=1, retry_after_s=1, metrics=metrics)
    with pytest.raises(ConnectionResetError), slots.hold("events", "alice"):
        raise ConnectionResetError
    with slots.hold("events", "alice"):
        pass


def test_the_history_gate_admits_its_limit_at_once() -> None:
    metrics, _ = _metrics()
    gate = WorkGate(limit=2, route="/api/alerts", retry_after_s=7, metrics=metrics)
    with gate.enter(), gate.enter():
        with pytest.raises(HttpError) as refused, gate.enter():
            pass
        assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "7"
    with gate.enter():
        pass


def test_the_rate_limit_allows_a_burst_then_one_per_interval_per_owner() -> None:
    metrics, registry = _metrics()
    limit = RateLimit(per_minute=6, route="/test", metrics=metrics)
    for _ in range(6):
        limit.take("alice", now=100.0)
    with pytest.raises(HttpError) as refused:
        limit.take("alice", now=100.0)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "10"  # one token every 10 s
    limit.take("bob", now=100.0)  # another owner's bucket is full
    with pytest.raises(HttpError) as again:
        limit.take("alice", now=105.0)
    assert again.value.headers["Retry-After"] == "5"
    limit.take("alice", now=110.0)  # refilled
    assert (
        registry.get_sample_value(
            "storywatch_http_refusals_total", {"route": "/test", "reason": "rate"}
        )
        == 2
    )
