"""Data contracts of the Kafka topics (Faust records, JSON on the wire)."""

from __future__ import annotations

from typing import Any

import faust

from streams.contracts.headers import REPLAY_TIME_HEADER
from streams.engine.article import Article
from streams.engine.clustering import Assignment
from streams.engine.evidence import TextEvidence
from streams.engine.story_state import StoryMerge
from streams.wire_json import WIRE_JSON

__all__ = [
    "MERGED",
    "REPLAY_TIME_HEADER",
    "EmbeddedArticle",
    "StoryEvent",
]

#: The ``decision`` of a ``stories`` event that merges two stories (not an assignment).
MERGED = "merged"


class EmbeddedArticle(faust.Record, serializer=WIRE_JSON):
    """A valid article with its embedding, on ``articles-embedded``."""

    id: str
    title: str
    text: str
    source: str | None
    url: str | None
    published_at: str | None
    lang: str | None
    vector: str  # base64 float32, see streams.engine.vectors
    record_ts: float  # stream time of the articles record (epoch seconds)
    produced_at: float  # Kafka timestamp of the articles record: start of end-to-end latency
    # The text's own evidence, read in the parallel embed stage (None on records written
    # before it was added: the cluster agent then reads the text itself).
    term_counts: dict[str, int] | None = None
    entities: list[str] | None = None
    content_key: str | None = None
    # The STORYWATCH_MODEL that made the vector (None on records written before it was
    # kept): `storywatch replay` re-embeds from `articles` when a run asks for another model.
    model: str | None = None
    # Flags of input the embed stage cut (None: as sent): the UTF-8 size of the title and
    # text before they were cut to STORYWATCH_MAX_ARTICLE_TEXT_BYTES, and the stream time
    # the record claimed when it was past the stage's clock + STORYWATCH_CLOCK_TOLERANCE_MINUTES
    # (``record_ts`` is then the capped time).
    truncated_from: int | None = None
    claimed_time: float | None = None

    @classmethod
    def build(
        cls,
        article: Article,
        vector: str,
        record_ts: float,
        produced_at: float,
        evidence: TextEvidence | None = None,
        *,
        model: str | None = None,
        claimed_time: float | None = None,
    ) -> EmbeddedArticle:
        return cls(
            model=model,
            truncated_from=article.truncated_from,
            claimed_time=claimed_time,
            term_counts=evidence.term_counts if evidence else None,
            entities=sorted(evidence.entities) if evidence else None,
            content_key=evidence.content_key if evidence else None,
            id=article.id,
            title=article.title,
            text=article.text,
            source=article.source,
            url=article.url,
            lang=article.lang,
            vector=vector,
            record_ts=record_ts,
            produced_at=produced_at,
            published_at=article.published_at.isoformat() if article.published_at else None,
        )

    def text_evidence(self) -> TextEvidence | None:
        if self.term_counts is None or self.entities is None or self.content_key is None:
            return None
        return TextEvidence(dict(self.term_counts), frozenset(self.entities), self.content_key)

    def to_article(self) -> Article:
        from streams.engine.validation import article_from_mapping

        return article_from_mapping(self.asdict())


class StoryEvent(faust.Record, serializer=WIRE_JSON):
    """One story assignment, on ``stories`` (keyed by story id); or, with ``decision``
    "merged", two stories found to be one: ``absorbed_id`` now lives on as ``story_id``."""

    article_id: str
    story_id: str
    dup_group_id: str
    decision: str
    similarity: float
    story_size: int
    source_count: int
    first_seen: float
    last_seen: float
    headline: str
    event_time: float
    source: str
    url: str | None
    title: str
    produced_at: float
    # The evidence behind the join (see streams.engine.clustering.Assignment):
    lexical_similarity: float = 0.0
    entity_share: float | None = None
    shared_terms: list[str] | None = None  # None (not []): Faust shares mutable defaults
    keywords: list[str] | None = None
    rejected_story_id: str | None = None
    rejected_score: float | None = None
    rejected_entity_share: float | None = None
    # For the stages after clustering (subscription matching): the article's text as the
    # model read it, and the story's unit centroid after this article (base64 float32).
    text: str | None = None
    centroid: str | None = None
    # A "merged" event only (None on assignments and on events written before merges):
    # the story folded into ``story_id``, and why (see :meth:`merged`).
    absorbed_id: str | None = None
    merge: dict[str, Any] | None = None
    # The article's input flags (see EmbeddedArticle): cut to the size budget, or its stream
    # time cut to the embed stage's clock (None: as sent).
    truncated_from: int | None = None
    claimed_time: float | None = None

    @property
    def is_merge(self) -> bool:
        return self.decision == MERGED

    @classmethod
    def build(
        cls,
        assignment: Assignment,
        produced_at: float,
        *,
        text: str | None = None,
        centroid: str | None = None,
        truncated_from: int | None = None,
        claimed_time: float | None = None,
    ) -> StoryEvent:
        fields: dict[str, Any] = {
            name: getattr(assignment, name) for name in Assignment.__dataclass_fields__
        }
        return cls(
            produced_at=produced_at,
            text=text,
            centroid=centroid,
            truncated_from=truncated_from,
            claimed_time=claimed_time,
            **fields,
        )

    @classmethod
    def merged(cls, merge: StoryMerge, assigned: StoryEvent) -> StoryEvent:
        """The ``merged`` event of ``merge``: the survivor as the bridging article's event
        (``assigned``) left it, the absorbed id, and the evidence. ``article_id`` is the
        bridging article's; ``similarity`` its dense cosine to the absorbed story; the
        sizes in ``merge`` are those before the merge (``story_size`` is after it)."""
        evidence = merge.record()
        return cls(
            **{
                **assigned.asdict(),
                "decision": MERGED,
                "similarity": evidence["similarity"],
                "absorbed_id": merge.absorbed_id,
                "merge": {
                    "bridges": merge.bridges,
                    "score": evidence["score"],
                    "similarity": evidence["similarity"],
                    "centroid_similarity": evidence["centroid_similarity"],
                    "survivor_size": merge.story_size,
                    "absorbed_size": merge.absorbed_size,
                },
                # the join's evidence belongs to the assignment event, not to the merge
                "lexical_similarity": 0.0,
                "entity_share": None,
                "shared_terms": None,
                "rejected_story_id": None,
                "rejected_score": None,
                "rejected_entity_share": None,
                "text": None,
                "truncated_from": None,
                "claimed_time": None,
            }
        )

    def to_assignment(self) -> Assignment:
        fields = {name: getattr(self, name) for name in Assignment.__dataclass_fields__}
        fields["shared_terms"] = list(self.shared_terms or [])
        fields["keywords"] = list(self.keywords or [])
        return Assignment(**fields)
