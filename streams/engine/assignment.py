"""The decision for one article, as the payload of a ``stories`` event, with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streams.engine.article import Article
from streams.engine.scoring import JoinEvidence
from streams.engine.story_state import Story

__all__ = ["Assignment", "Decision", "assignment_for"]

Decision = Literal["new", "joined", "duplicate"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The decision for one article: the payload of a ``stories`` event."""

    article_id: str
    story_id: str
    dup_group_id: str
    decision: Decision
    similarity: float  # dense cosine to the story centroid (1.0 for a new story)
    story_size: int
    source_count: int
    first_seen: float
    last_seen: float
    headline: str
    event_time: float
    source: str
    url: str | None
    title: str
    # The evidence behind the decision:
    lexical_similarity: float = 0.0  # TF-IDF cosine to the story's term profile
    entity_share: float | None = None  # IDF-weighted share of the article's names the story has
    shared_terms: list[str] = field(default_factory=list)  # strongest terms shared with the story
    keywords: list[str] = field(default_factory=list)  # the story's top terms
    # For a new story: the closest story it did NOT join, and that story's score (why not:
    # below story_threshold, or entity_share below its bar).
    rejected_story_id: str | None = None
    rejected_score: float | None = None
    rejected_entity_share: float | None = None


def assignment_for(
    *,
    article: Article,
    story: Story,
    group_id: str,
    decision: Decision,
    similarity: float,
    event_time: float,
    lexical: float = 1.0,
    entity_share: float | None = None,
    shared_terms: list[str] | None = None,
    rejected: JoinEvidence | None = None,
) -> Assignment:
    """The event for ``article`` placed in ``story`` (scores rounded to 4 places)."""
    return Assignment(
        article_id=article.id,
        story_id=story.id,
        dup_group_id=group_id,
        decision=decision,
        similarity=round(similarity, 4),
        lexical_similarity=round(lexical, 4),
        entity_share=None if entity_share is None else round(entity_share, 4),
        shared_terms=shared_terms or [],
        keywords=story.keywords(),
        story_size=story.size,
        source_count=story.source_count,
        first_seen=story.first_seen,
        last_seen=story.last_seen,
        headline=story.headline,
        event_time=event_time,
        source=article.source_name,
        url=article.url,
        title=article.title,
        rejected_story_id=rejected.story_id if rejected else None,
        rejected_score=round(rejected.score, 4) if rejected else None,
        rejected_entity_share=None
        if rejected is None or rejected.entity_share is None
        else round(rejected.entity_share, 4),
    )
