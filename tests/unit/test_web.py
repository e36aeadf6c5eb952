"""The public view of a story record (what /api/stories serves)."""

from __future__ import annotations

from streams.engine.clustering import story_keywords
from streams.web import story_summary

PROFILE = {"flood": 3.0, "valley": 2.5, "dam": 2.0, "rescue": 1.5, "boats": 1.0, "dawn": 0.5}
RECORD = {
    "id": "st-1",
    "headline": "Flood in the valley",
    "size": 3,
    "sources": {"a": 2, "b": 1},
    "first_seen": 1.0,
    "last_seen": 2.0,
    "terms": PROFILE,
    "centroid_sum": "AAAA",
}


def test_summary_serves_the_kept_top_terms_and_no_vectors() -> None:
    kept = ["kept", "by", "the", "engine", "itself"]
    summary = story_summary(RECORD | {"keywords": kept})
    assert summary["keywords"] == kept
    assert summary["source_count"] == 2
    assert "centroid_sum" not in summary and "terms" not in summary


def test_summary_of_an_older_record_ranks_its_profile() -> None:
    summary = story_summary(RECORD)
    ranked = ["flood", "valley", "dam", "rescue", "boats"]
    assert summary["keywords"] == story_keywords(PROFILE) == ranked
