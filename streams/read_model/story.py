"""What the read model keeps per story and per article, and their public JSON views."""

from __future__ import annotations

import re
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streams.read_model.timeline import TimeCounts

__all__ = ["ArticleEntry", "StoryEntry", "words_of"]

_WORD = re.compile(r"\w+", re.UNICODE)


def words_of(*texts: str) -> frozenset[str]:
    """Lower-case words of 2+ characters: what the text search matches, whole words.
    Interned: the stories share one copy of each word."""
    return frozenset(sys.intern(w) for t in texts for w in _WORD.findall(t.lower()) if len(w) > 1)


@dataclass(slots=True)
class ArticleEntry:
    """One article of a story and why it is there (the engine's evidence)."""

    n: int  # its ordinal in the story (0 = the article that started it): the page cursor
    article_id: str
    title: str
    source: str
    url: str | None
    event_time: float
    decision: str
    dup_group_id: str
    similarity: float
    lexical_similarity: float
    entity_share: float | None
    shared_terms: tuple[str, ...]
    rejected_story_id: str | None
    rejected_score: float | None
    rejected_entity_share: float | None

    def view(self) -> dict[str, Any]:
        why: dict[str, Any] = {
            "decision": self.decision,
            "similarity": self.similarity,
            "lexical_similarity": self.lexical_similarity,
            "entity_share": self.entity_share,
            "shared_terms": list(self.shared_terms),
        }
        if self.rejected_story_id is not None:
            why["closest_story_not_joined"] = {
                "story_id": self.rejected_story_id,
                "score": self.rejected_score,
                "entity_share": self.rejected_entity_share,
            }
        return {
            "article_id": self.article_id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "time": self.event_time,
            "dup_group_id": self.dup_group_id,
            "why": why,
        }


@dataclass(slots=True)
class StoryEntry:
    """One active story: its latest summary, its recent articles, its counts over time."""

    story_id: str
    headline: str = ""
    keywords: tuple[str, ...] = ()
    size: int = 0
    source_count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    articles_seen: int = 0  # story events applied (re-publications included)
    last_hour: int = 0
    last_day: int = 0
    # source -> [time of its first article here, articles]: "sources as they joined"
    sources: dict[str, list[float]] = field(default_factory=dict)
    # near-duplicate group -> [articles, title of its first article]
    groups: dict[str, list[Any]] = field(default_factory=dict)
    recent: deque[ArticleEntry] = field(default_factory=deque)
    recent_ids: set[str] = field(default_factory=set)
    counts: TimeCounts = field(default_factory=TimeCounts)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    started_by: ArticleEntry | None = None  # the first article: why it did not join another
    words: frozenset[str] = frozenset()
    first_sources: list[str] = field(default_factory=list)  # the first 5 to join
    spark: list[int] | None = None  # the sparkline, cached until the story changes
    keys: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # sort -> its index key
    # the stories merged into this one (oldest first), each with the merge's evidence
    merged_from: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, alert: dict[str, Any]) -> None:
        """Keep an alert of this story (once: a replayed alert is the same id)."""
        if all(a["id"] != alert["id"] for a in self.alerts):
            self.alerts.append(alert)

    def absorb(self, other: StoryEntry, keep_articles: int, first_sources: int) -> None:
        """Fold ``other`` (a story merged into this one) into this entry: its articles,
        sources, groups, counts over time and alerts. The summary fields (headline, size,
        times) come from the ``merged`` event, and the indexes are the model's to update."""
        fresh = self.articles_seen == 0
        self.first_seen = other.first_seen if fresh else min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.articles_seen += other.articles_seen
        self.last_hour += other.last_hour
        self.last_day += other.last_day
        for source, (when, n) in other.sources.items():
            mine = self.sources.setdefault(source, [when, 0])
            mine[0], mine[1] = min(mine[0], when), mine[1] + n
        by_time = sorted(self.sources.items(), key=lambda x: (x[1][0], x[0]))
        self.first_sources = [s for s, _ in by_time[:first_sources]]
        for gid, (n, title) in other.groups.items():
            self.groups.setdefault(gid, [0, title])[0] += n
        # The newest articles of both, renumbered in time order (the articles cursor).
        both = sorted([*self.recent, *other.recent], key=lambda a: (a.event_time, a.n))
        kept = both[-keep_articles:] if keep_articles > 0 else []
        for n, article in enumerate(kept, start=self.articles_seen - len(kept)):
            article.n = n
        self.recent = deque(kept)
        self.recent_ids = {a.article_id for a in kept}
        self.counts.absorb(other.counts)
        for alert in other.alerts:
            self.attach(alert)
        if self.started_by is None:
            self.started_by = other.started_by
        self.merged_from.extend(other.merged_from)
        self.spark = None

    def summary(self, spark_bars: int) -> dict[str, Any]:
        if self.spark is None:
            _, bars = self.counts.bars(self.first_seen, self.last_seen, spark_bars)
            self.spark = [n for _, n in bars]
        return {
            "story_id": self.story_id,
            "headline": self.headline,
            "keywords": list(self.keywords),
            "size": self.size,
            "source_count": self.source_count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "articles_last_hour": self.last_hour,
            "articles_last_day": self.last_day,
            "sources": list(self.first_sources),
            "alerts": len(self.alerts),
            "spark": list(self.spark),
        }
