"""format_story_event (one readable line per story event) and the topic partition plan."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from streams.kafka.admin import pipeline_topic_partitions
from streams.watch import format_story_event

HEADLINE = "Quake of magnitude 7.1 strikes off the coast; tsunami warning issued for the region"


def _event(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_time": 1_700_000_000.0,  # 2023-11-14 22:13:20 UTC
        "decision": "joined",
        "story_id": "st-0123456789ab",
        "story_size": 12,
        "source_count": 4,
        "similarity": 0.8765,
        "headline": HEADLINE,
    }
    event.update(overrides)
    return event


def test_format_story_event_fields() -> None:
    line = format_story_event(_event())
    assert "\n" not in line
    assert line.startswith("11-14 22:13 ")
    assert "JOINED" in line
    assert "st-0123456789ab" in line
    assert "size=12" in line
    assert "sources=4" in line
    assert "sim=0.88" in line


def test_headline_is_cut_to_60_chars() -> None:
    assert len(HEADLINE) > 60
    line = format_story_event(_event())
    assert line.endswith(HEADLINE[:60])
    assert HEADLINE[:61] not in line
    short = format_story_event(_event(headline="Short one"))
    assert short.endswith("Short one")


@pytest.mark.parametrize(
    ("decision", "label"), [("new", "NEW"), ("joined", "JOINED"), ("duplicate", "DUP")]
)
def test_decision_labels(decision: str, label: str) -> None:
    line = format_story_event(_event(decision=decision))
    assert f" {label} " in line


def test_unknown_decision_is_shown_as_is() -> None:
    # ("merged" has a line of its own: tests/unit/test_story_merges.py)
    assert " split " in format_story_event(_event(decision="split"))


def test_pipeline_topic_partitions() -> None:
    settings = Settings(articles_partitions=6, topic_articles="in", topic_embedded="emb")
    plan = pipeline_topic_partitions(settings.topics)
    assert plan["in"] == 6
    assert plan["emb"] == 1
    assert plan == {
        "in": 6,
        "articles-dlq": 1,
        "emb": 1,
        "stories": 1,
        "alerts": 1,
        "deliveries": 1,
        "alerts-dlq": 1,
        "subscriptions": 1,
        "feeds": 8,
        "feed-state": 1,
        "feed-seen": 1,
    }
    assert pipeline_topic_partitions(Settings().topics)["articles"] == 1


def test_format_alert_names_story_size_and_sources() -> None:
    from streams.watch import format_alert

    line = format_alert(
        {
            "type": "io.storywatch.story.emerging",
            "data": {
                "story_id": "st-1",
                "headline": "Quake",
                "size": 7,
                "sources": ["a", "b", "c"],
            },
        }
    )
    assert "st-1" in line and "Quake" in line and "7 articles" in line and "3 sources" in line


def test_joined_event_shows_article_title_and_story_headline() -> None:
    from streams.watch import format_story_event

    line = format_story_event(
        {
            "event_time": 0,
            "decision": "joined",
            "story_id": "st-9",
            "story_size": 2,
            "source_count": 2,
            "similarity": 0.7,
            "headline": "Big quake",
            "title": "Quake hits",
        }
    )
    assert "Quake hits" in line and "[story: Big quake]" in line
