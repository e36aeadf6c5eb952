"""The emerging-story rule over story assignments (its CloudEvents envelope: streams.contracts)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from config.groups import AlertSettings
from streams.engine.clustering import Assignment
from streams.time_ranges import iso_time

__all__ = ["EMERGING", "EmergingRule", "EmergingState"]

EMERGING = "io.storywatch.story.emerging"
# Why 5: enough links for a reader to check the story without flooding the alert.
_SAMPLE_URLS = 5


@dataclass
class EmergingState:
    """Per-story memory of the emerging rule: recent (time, source, article id) triples and
    whether it fired. Keyed by article, so a story event seen twice (processing is
    at-least-once: a restarted stage replays its last batch) counts once."""

    recent: deque[tuple[float, str, str]] = field(default_factory=deque)
    urls: list[str] = field(default_factory=list)
    fired: bool = False

    def to_record(self) -> dict[str, Any]:
        return {"recent": [list(x) for x in self.recent], "urls": self.urls, "fired": self.fired}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> EmergingState:
        # Records written before article ids were kept hold (time, source) pairs.
        return cls(
            deque(
                (float(x[0]), str(x[1]), str(x[2]) if len(x) > 2 else f"#{n}")
                for n, x in enumerate(rec["recent"])
            ),
            list(rec["urls"]),
            bool(rec["fired"]),
        )


@dataclass(frozen=True, slots=True)
class EmergingRule:
    """A story with >= ``min_articles`` articles from >= ``min_sources`` distinct sources
    within ``window_s`` seconds is emerging. Fires once per story."""

    min_articles: int
    min_sources: int
    window_s: float
    name: str = "emerging"

    @classmethod
    def from_settings(cls, alerts: AlertSettings) -> EmergingRule:
        return cls(
            min_articles=alerts.emerging_min_articles,
            min_sources=alerts.emerging_min_sources,
            window_s=alerts.emerging_window_hours * 3600.0,
        )

    def observe(self, state: EmergingState, event: Assignment) -> dict[str, Any] | None:
        """Update ``state`` with one assignment; return the alert data when the rule fires."""
        if state.fired or event.decision == "duplicate":
            return None
        if any(a == event.article_id for _, _, a in state.recent):
            return None  # a replayed event: already counted
        state.recent.append((event.event_time, event.source, event.article_id))
        if event.url and len(state.urls) < _SAMPLE_URLS and event.url not in state.urls:
            state.urls.append(event.url)
        # Keep the articles within the window ending at the newest one; events may come out of
        # time order (publication dates), so filter all of them, not just the oldest.
        newest = max(t for t, _, _ in state.recent)
        state.recent = deque(x for x in state.recent if newest - self.window_s <= x[0] <= newest)
        sources = sorted({s for _, s, _ in state.recent})
        if len(state.recent) < self.min_articles or len(sources) < self.min_sources:
            return None
        state.fired = True
        state.recent.clear()
        return {
            "rule": self.name,
            "story_id": event.story_id,
            "headline": event.headline,
            "size": event.story_size,
            "sources": sources,
            "source_count": event.source_count,
            "sample_urls": list(state.urls),
            "first_seen": iso_time(event.first_seen),
            "last_seen": iso_time(event.last_seen),
        }
