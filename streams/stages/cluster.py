"""The cluster stage: one embedded article in; its assignment to a story, the engine's state
changes (to mirror into tables) and the story steps the stages after it read, out.

State: the :class:`~streams.engine.clustering.StoryEngine` passed in (the worker restores it
from its tables; replay, rebuild and the offline ``cluster``/``eval`` start a fresh one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.engine.article import Article
from streams.engine.clustering import Assignment, StateChanges, StoryEngine, StoryMerge
from streams.engine.evidence import TextEvidence
from streams.engine.validation import article_from_mapping
from streams.engine.vectors import Vector, decode_vector

__all__ = ["ClusterInput", "Clustered", "StoryStep", "cluster"]


@dataclass(frozen=True, slots=True)
class ClusterInput:
    """One article as the cluster stage takes it (what ``articles-embedded`` holds)."""

    article: Article
    vector: Vector
    stream_time: float  # epoch seconds, as the embed stage read it
    evidence: TextEvidence | None  # None: computed by the engine (same result)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClusterInput:
        """From an ``articles-embedded`` record's JSON (raises on a malformed one)."""
        return cls(
            article_from_mapping(data),
            decode_vector(data["vector"]),
            float(data["record_ts"]),
            _evidence(data),
        )


def _evidence(data: Mapping[str, Any]) -> TextEvidence | None:
    counts, entities, key = data.get("term_counts"), data.get("entities"), data.get("content_key")
    if not isinstance(counts, dict) or not isinstance(entities, list) or not isinstance(key, str):
        return None
    return TextEvidence(dict(counts), frozenset(entities), key)


@dataclass(frozen=True, slots=True)
class StoryStep:
    """One event of ``stories`` as the stages after clustering read it: an article's
    assignment, or (``absorbed_id`` set) the merge of ``absorbed_id`` into the assignment's
    story, with the survivor as the bridging article's assignment left it."""

    assignment: Assignment
    absorbed_id: str | None = None
    text: str = ""  # the article's text as the model read it (matching reads it)
    centroid: Vector | None = None  # the story's unit centroid after the article

    @property
    def story_id(self) -> str:
        return self.assignment.story_id

    @property
    def is_merge(self) -> bool:
        return self.absorbed_id is not None

    @property
    def when(self) -> float:
        """The story's activity time, for the stages' expiry of per-story state."""
        return max(self.assignment.last_seen, self.assignment.event_time)

    @classmethod
    def of_event(cls, event: _StoryEvent) -> StoryStep:
        """From a ``stories`` record (``streams.records.StoryEvent``)."""
        return cls(
            event.to_assignment(),
            event.absorbed_id if event.is_merge else None,
            event.text or "",
            decode_vector(event.centroid) if event.centroid else None,
        )


class _StoryEvent(Protocol):
    @property
    def is_merge(self) -> bool: ...
    @property
    def absorbed_id(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def centroid(self) -> str | None: ...
    def to_assignment(self) -> Assignment: ...


@dataclass(frozen=True, slots=True)
class Clustered:
    """The stage's output for one article."""

    assignment: Assignment | None  # None: an exact re-send of an id already assigned
    changes: StateChanges  # for the tables (the worker) or the rebuilt state (rebuild)
    centroid: Vector | None = None  # the story's unit centroid after the article
    merges: list[StoryMerge] = field(default_factory=list)  # completed by this article

    def steps(self, text: str) -> list[StoryStep]:
        """What the stages after clustering read of this article: its assignment, then each
        merge it completed (in the order the worker sends them on ``stories``)."""
        if self.assignment is None:
            return []
        steps = [StoryStep(self.assignment, None, text, self.centroid)]
        steps += [StoryStep(self.assignment, m.absorbed_id, "", None) for m in self.merges]
        return steps


def cluster(engine: StoryEngine, item: ClusterInput) -> Clustered:
    """Assign one article (raises on a record the engine cannot take: a dead letter)."""
    assignment, changes = engine.process(item.article, item.vector, item.stream_time, item.evidence)
    if assignment is None:
        return Clustered(None, changes)
    return Clustered(assignment, changes, engine.centroid(assignment.story_id), changes.merges)
