"""The emerging-story rule and the CloudEvents envelope."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from streams.contracts.cloudevents import cloud_event
from streams.engine.clustering import Assignment
from streams.engine.emerging import EMERGING, EmergingRule, EmergingState

T0 = 1_700_000_000.0
HOUR = 3600.0


def event(
    t: float,
    source: str,
    *,
    decision: str = "joined",
    story: str = "st-1",
    url: str | None = None,
    size: int = 1,
) -> Assignment:
    return Assignment(
        article_id=f"{source}-{t}",
        story_id=story,
        dup_group_id="dg-1",
        decision=decision,  # type: ignore[arg-type]
        similarity=1.0,
        story_size=size,
        source_count=1,
        first_seen=T0,
        last_seen=t,
        headline="Flood in the north",
        event_time=t,
        source=source,
        url=url,
        title="t",
    )


def feed(rule: EmergingRule, state: EmergingState, events: list[Assignment]) -> list[dict]:
    return [alert for ev in events if (alert := rule.observe(state, ev)) is not None]


def test_fires_once_when_enough_articles_and_sources_in_window() -> None:
    rule = EmergingRule(min_articles=3, min_sources=2, window_s=HOUR)
    state = EmergingState()
    assert rule.observe(state, event(T0, "a", url="https://a/1")) is None
    assert rule.observe(state, event(T0 + 60, "b", url="https://b/1")) is None
    alert = rule.observe(state, event(T0 + 120, "a", url="https://a/2", size=3))
    assert alert is not None
    assert alert["rule"] == "emerging"
    assert alert["story_id"] == "st-1"
    assert alert["headline"] == "Flood in the north"
    assert alert["size"] == 3
    assert alert["sources"] == ["a", "b"]
    assert alert["sample_urls"] == ["https://a/1", "https://b/1", "https://a/2"]
    assert alert["first_seen"].endswith("Z")
    assert datetime.fromisoformat(alert["last_seen"].replace("Z", "+00:00")).timestamp() == (
        T0 + 120
    )
    assert state.fired
    # Never again for this story, however much more arrives.
    later = [event(T0 + 180 + i, s) for i, s in enumerate("abcdefgh")]
    assert feed(rule, state, later) == []


def test_does_not_fire_with_too_few_sources() -> None:
    rule = EmergingRule(min_articles=3, min_sources=2, window_s=HOUR)
    state = EmergingState()
    assert feed(rule, state, [event(T0 + i, "a") for i in range(10)]) == []
    assert not state.fired


def test_does_not_fire_when_spread_beyond_window() -> None:
    rule = EmergingRule(min_articles=3, min_sources=2, window_s=HOUR)
    state = EmergingState()
    events = [event(T0 + i * (HOUR + 1), s) for i, s in enumerate("abcabc")]
    assert feed(rule, state, events) == []
    assert len(state.recent) == 1  # everything older than the window was dropped
    # Two more inside the window of the last one complete it.
    alerts = feed(
        rule, state, [event(T0 + 5 * (HOUR + 1) + 10, "a"), event(T0 + 5 * (HOUR + 1) + 20, "b")]
    )
    assert len(alerts) == 1


def test_duplicates_are_ignored() -> None:
    rule = EmergingRule(min_articles=3, min_sources=2, window_s=HOUR)
    state = EmergingState()
    events = [
        event(T0, "a"),
        event(T0 + 1, "a"),
        event(T0 + 2, "b", decision="duplicate"),
        event(T0 + 3, "c", decision="duplicate"),
    ]
    assert feed(rule, state, events) == []
    assert [s for _, s, _ in state.recent] == ["a", "a"]
    alert = rule.observe(state, event(T0 + 4, "b"))
    assert alert is not None
    assert alert["sources"] == ["a", "b"]


def test_new_decision_counts() -> None:
    rule = EmergingRule(min_articles=1, min_sources=1, window_s=HOUR)
    assert rule.observe(EmergingState(), event(T0, "a", decision="new")) is not None


def test_a_late_old_article_does_not_count_in_the_window() -> None:
    # Event times are publication dates, so an old report can arrive after newer ones.
    rule = EmergingRule(min_articles=3, min_sources=3, window_s=6 * HOUR)
    state = EmergingState()
    events = [
        event(T0 + 100 * HOUR, "a"),
        event(T0 + 40 * HOUR, "b"),  # 60 h older than the others
        event(T0 + 100.5 * HOUR, "c"),
    ]
    # Within any 6 h window there are only two articles (a, c) from two sources.
    assert feed(rule, state, events) == []


def test_sample_urls_are_capped() -> None:
    rule = EmergingRule(min_articles=8, min_sources=2, window_s=HOUR)
    state = EmergingState()
    events = [event(T0 + i, "ab"[i % 2], url=f"https://x/{i}") for i in range(8)]
    alerts = feed(rule, state, events)
    assert len(alerts) == 1
    assert alerts[0]["sample_urls"] == [f"https://x/{i}" for i in range(5)]


def test_state_record_round_trip() -> None:
    rule = EmergingRule(min_articles=3, min_sources=3, window_s=HOUR)
    state = EmergingState()
    feed(rule, state, [event(T0, "a", url="https://a/1"), event(T0 + 5, "b")])
    record = json.loads(json.dumps(state.to_record()))
    restored = EmergingState.from_record(record)
    assert restored == state
    assert [(t, s) for t, s, _ in restored.recent] == [(T0, "a"), (T0 + 5, "b")]
    assert restored.urls == ["https://a/1"]
    assert restored.fired is False
    # The restored state continues exactly where the old one was.
    assert rule.observe(restored, event(T0 + 10, "c")) is not None
    fired = EmergingState.from_record(json.loads(json.dumps(restored.to_record())))
    assert fired.fired is True
    assert rule.observe(fired, event(T0 + 11, "d")) is None


def test_cloud_event_envelope() -> None:
    data = {"story_id": "st-1", "size": 5}
    ce = cloud_event(
        EMERGING, "st-1", data, source="/storywatch/test", event_id="alert-st-1", time=T0 + 0.5
    )
    assert ce["specversion"] == "1.0"
    assert ce["type"] == EMERGING == "io.storywatch.story.emerging"
    assert ce["source"] == "/storywatch/test"
    assert ce["id"] == "alert-st-1"
    assert ce["subject"] == "st-1"
    assert ce["datacontenttype"] == "application/json"
    assert ce["data"] == data
    assert ce["time"].endswith("Z")
    assert "+00:00" not in ce["time"]
    parsed = datetime.fromisoformat(ce["time"].replace("Z", "+00:00"))
    assert parsed.timestamp() == pytest.approx(T0 + 0.5)
    assert ce["time"].startswith("2023-11-14T22:13:20")
    json.dumps(ce)  # serialisable as is


def test_a_replayed_event_counts_once() -> None:
    """Processing is at-least-once: a restarted stage may see a story event again. The same
    article must not count twice (it made a story 'emerge' early after a kill -9)."""
    rule = EmergingRule(min_articles=3, min_sources=2, window_s=HOUR)
    state = EmergingState()
    first, second = event(T0, "a"), event(T0 + 1, "b")
    assert feed(rule, state, [first, second, first, second]) == []
    assert len(state.recent) == 2
    assert feed(rule, state, [event(T0 + 2, "c")]) != []


def test_legacy_records_without_article_ids_restore() -> None:
    record = {"recent": [[T0, "a"], [T0 + 1, "b"]], "urls": [], "fired": False}
    restored = EmergingState.from_record(record)
    assert [(t, s) for t, s, _ in restored.recent] == [(T0, "a"), (T0 + 1, "b")]
