"""Scoring a candidate story for an article, and the evidence that explains the decision.

Pure functions over a :class:`Story` and an article's term vector and names; the document
frequencies of the active window (which make the IDF weights) live in
:class:`WindowFrequencies`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from streams.engine.evidence import DocumentFrequencies
from streams.engine.params import ClusterParams
from streams.engine.story_state import TOP_TERMS, Record, Story, dot

__all__ = ["JoinEvidence", "WindowFrequencies", "strongest_shared", "weigh"]


class JoinEvidence(NamedTuple):
    """Why an article joins (or not) one candidate story (a tuple: made 5 times an article)."""

    story_id: str
    dense: float
    lexical: float
    score: float
    entity_share: float | None  # None: too few entities in the article to judge
    accepted: bool


class WindowFrequencies:
    """How many articles of the active window hold each term and each name (the IDF)."""

    def __init__(self) -> None:
        self.terms = DocumentFrequencies()
        self.entities = DocumentFrequencies()

    def add(self, terms: Iterable[str], entities: Iterable[str]) -> None:
        self.terms.add(terms)
        self.entities.add(entities)

    def forget(self, seen: Record) -> None:
        """An article left the window: it no longer counts (records without terms: no-op)."""
        if "terms" in seen:
            self.terms.remove(seen["terms"])
            self.entities.remove(seen["entities"])

    def remember(self, seen: Record) -> None:
        """A restored article's seen record counts again."""
        if "terms" in seen:
            self.terms.add(seen["terms"])
            self.entities.add(seen["entities"])

    def name_weights(self, names: set[str], entity_min: int) -> dict[str, float]:
        """IDF of each of the article's entities; empty when too few to judge by."""
        if len(names) < entity_min:
            return {}
        return {name: self.entities.idf(name) for name in names}


def weigh(
    story: Story,
    dense: float,
    term_vec: dict[str, float],
    names: dict[str, float],
    params: ClusterParams,
) -> JoinEvidence:
    """Dense cosine plus weighted lexical cosine must clear the story bar; an article with
    enough entities (``names``: entity -> IDF) must also share some of the story's usual
    ones (different events of the same kind share the topic, not the names and numbers)."""
    norm_sq = story.profile_norm_sq()
    lexical = dot(term_vec, story.terms) / math.sqrt(norm_sq) if norm_sq > 0 else 0.0
    score = dense + params.lexical_weight * lexical
    accepted = score >= params.story_threshold
    share: float | None = None
    total = sum(names.values())
    if total > 0:
        mentioned = sum(w * story.entities.get(n, 0) for n, w in names.items())
        share = mentioned / (total * story.size)
        if accepted and score < params.entity_override:
            accepted = share >= params.entity_share
    return JoinEvidence(story.id, dense, lexical, score, share, accepted)


def strongest_shared(vector: dict[str, float], profile: dict[str, float]) -> list[str]:
    """The terms contributing most to the article-story lexical similarity."""
    shared = [(w * profile[t], t) for t, w in vector.items() if t in profile]
    return [t for _, t in sorted(shared, key=lambda x: (-x[0], x[1]))[:TOP_TERMS]]
