"""Story and near-duplicate group state: the live objects, their table records, and the
active set (least recently active first) that expires them.

No scoring here: :mod:`streams.engine.scoring` reads these objects to weigh a candidate.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.engine.article import Article, stable_id
from streams.engine.vectors import Vector, decode_vector, encode_vector

__all__ = [
    "GROUP_SEARCH_MAX",
    "PROFILE_MAX",
    "SOURCES_MAX",
    "TOP_TERMS",
    "ActiveStories",
    "Group",
    "Record",
    "StateChanges",
    "Story",
    "StoryMerge",
    "dot",
    "story_keywords",
]

Record = dict[str, Any]

# Why 5: a story summary a person reads at a glance; also the size of shared-term evidence.
TOP_TERMS = 5
# Why 512 terms and 512 names: a story's profile gains a few terms and names with every
# article, and the whole story record is written each batch (545 articles of 80 new words
# once made a 1.2 MB record, 53 ms a dump). The heaviest 512 carry the lexical evidence: a
# headline has ~8 terms, and the stories of the dev streams hold fewer than 512 (eval is
# unchanged). Trimmed back to this once twice as many gathered: amortised O(1) per article.
PROFILE_MAX = 512
# Why 256 outlets with counts: the story view and alerts name a handful; past that the
# distinct count goes on in ``sources_dropped`` (an outlet dropped and seen again counts
# twice: the count is a bound from above past 256 outlets).
SOURCES_MAX = 256
# Why the 1,024 newest groups: a re-published report arrives near its original in time, so
# its group is among the newest; matching against all of a 10,000-article story's groups
# made each article cost more as the story grew. Per-article cost stays flat past this.
GROUP_SEARCH_MAX = 1024


def story_keywords(profile: dict[str, float]) -> list[str]:
    """The story's top terms by summed TF-IDF weight."""
    best = heapq.nsmallest(TOP_TERMS, profile.items(), key=lambda kv: (-kv[1], kv[0]))
    return [t for t, _ in best]


def dot(vector: dict[str, float], profile: dict[str, float]) -> float:
    """Sparse dot product of a term vector with a term profile."""
    get = profile.get
    return sum([w * get(t, 0.0) for t, w in vector.items()])


@dataclass(slots=True)
class Group:
    """A near-duplicate group inside a story: the same report re-published."""

    id: str
    story_id: str
    vector: Vector
    size: int
    title: str

    def record(self) -> Record:
        return {
            "id": self.id,
            "story_id": self.story_id,
            "vector": encode_vector(self.vector),
            "size": self.size,
            "title": self.title,
        }

    @classmethod
    def from_record(cls, rec: Record) -> Group:
        return cls(
            rec["id"], rec["story_id"], decode_vector(rec["vector"]), rec["size"], rec["title"]
        )


@dataclass(slots=True)
class Story:
    id: str
    centroid_sum: Vector
    size: int
    sources: dict[str, int]
    first_seen: float
    last_seen: float
    last_active: float
    headline: str
    headline_group_size: int
    terms: dict[str, float] = field(default_factory=dict)  # summed unit TF-IDF vectors
    entities: dict[str, int] = field(default_factory=dict)  # entity -> members mentioning it
    group_ids: list[str] = field(default_factory=list)
    terms_norm_sq: float | None = None  # |terms|^2, derived (kept in the record)
    group_matrix: Vector | None = None  # rows = group vectors in group_ids order, derived
    top_terms: list[str] | None = None  # story_keywords(terms), derived (kept in the record)
    # other story id -> articles that joined this story and scored >= merge_score against
    # the other (kept in the record only once non-empty: merges off, records as before)
    bridges: dict[str, int] = field(default_factory=dict)
    # Distinct outlets trimmed from ``sources`` (SOURCES_MAX); in the record once non-zero.
    sources_dropped: int = 0
    group_rows: int = 0  # rows of group_matrix in use (it has spare capacity), derived

    @property
    def source_count(self) -> int:
        """Distinct outlets that reported the story."""
        return len(self.sources) + self.sources_dropped

    def trim(self) -> list[str]:
        """Bound the profile (:data:`PROFILE_MAX`, :data:`SOURCES_MAX`): once twice the
        bound gathered, keep the heaviest terms, the most mentioned names and the outlets
        with most articles (ties by name, so every replay trims alike). Returns the terms
        dropped (the term postings forget them)."""
        dropped: list[str] = []
        if len(self.terms) > 2 * PROFILE_MAX:
            kept = _heaviest(self.terms, PROFILE_MAX)
            dropped = [t for t in self.terms if t not in kept]
            self.terms = kept
            self.terms_norm_sq = None  # summed again over the kept terms
        if len(self.entities) > 2 * PROFILE_MAX:
            self.entities = _heaviest(self.entities, PROFILE_MAX)
        if len(self.sources) > 2 * SOURCES_MAX:
            kept_sources = _heaviest(self.sources, SOURCES_MAX)
            self.sources_dropped += len(self.sources) - len(kept_sources)
            self.sources = kept_sources
        return dropped

    def group_vectors(self, groups: dict[str, Group]) -> Vector:
        """The vectors of the story's :data:`GROUP_SEARCH_MAX` newest groups (rows of
        ``group_matrix``, in ``group_ids`` order), built once and then grown in place."""
        count = len(self.group_ids)
        if self.group_matrix is None or self.group_rows != count:
            vectors = [groups[g].vector for g in self.group_ids]
            shape = (max(8, 2 * count), len(vectors[0]))
            self.group_matrix = np.empty(shape, vectors[0].dtype)
            self.group_matrix[:count] = vectors
            self.group_rows = count
        return self.group_matrix[max(0, count - GROUP_SEARCH_MAX) : count]

    def add_group(self, group: Group) -> None:
        """A new group joins the story: a row added to the matrix, whose capacity doubles
        when full (a copy every doubling, not one per group)."""
        self.group_ids.append(group.id)
        matrix = self.group_matrix
        if matrix is None or self.group_rows != len(self.group_ids) - 1:
            self.group_matrix = None  # built on the next lookup
            return
        if self.group_rows == len(matrix):
            grown = np.empty((2 * len(matrix), matrix.shape[1]), matrix.dtype)
            grown[: self.group_rows] = matrix
            self.group_matrix = matrix = grown
        matrix[self.group_rows] = group.vector
        self.group_rows += 1

    def profile_norm_sq(self) -> float:
        if self.terms_norm_sq is None:
            self.terms_norm_sq = sum(w * w for w in self.terms.values())
        return self.terms_norm_sq

    def keywords(self) -> list[str]:
        """``story_keywords(self.terms)``, kept up to date by :meth:`add_terms`."""
        if self.top_terms is None:
            self.top_terms = story_keywords(self.terms)
        return self.top_terms

    def add_terms(self, term_vec: dict[str, float]) -> list[str]:
        """Add an article's (non-negative) TF-IDF weights to the profile; returns the terms
        new to it. Weights only grow, so a term outside the top terms that the article does
        not have stays behind every top term: the new top terms are among the old ones and
        the article's (no scan of the whole profile, which grows with the story)."""
        profile = self.terms
        # |p + x|^2 = |p|^2 + 2 p.x + |x|^2 (x is unit): the norm stays O(article terms).
        self.terms_norm_sq = self.profile_norm_sq() + 2 * dot(term_vec, profile) + 1.0
        added = [term for term in term_vec if term not in profile]
        for term, weight in term_vec.items():
            profile[term] = profile.get(term, 0.0) + weight
        if self.top_terms is not None:
            pool = set(self.top_terms).union(term_vec)
            self.top_terms = heapq.nsmallest(TOP_TERMS, pool, key=lambda t: (-profile[t], t))
        return added

    def add_entities(self, names: set[str]) -> None:
        for name in names:
            self.entities[name] = self.entities.get(name, 0) + 1

    def record(self) -> Record:
        return {
            "id": self.id,
            "centroid_sum": encode_vector(self.centroid_sum),
            "size": self.size,
            "sources": self.sources,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_active": self.last_active,
            "headline": self.headline,
            "headline_group_size": self.headline_group_size,
            "terms": dict(self.terms),
            "entities": dict(self.entities),
            # Derived, but kept so that a restored story continues with the very values the
            # running engine had (the norm is summed incrementally: a fresh sum can differ
            # in the last bits) and its first article after a restart skips both scans.
            "terms_norm_sq": self.profile_norm_sq(),
            "keywords": list(self.keywords()),
        } | (
            ({"bridges": dict(self.bridges)} if self.bridges else {})
            | ({"sources_dropped": self.sources_dropped} if self.sources_dropped else {})
        )

    @classmethod
    def from_record(cls, rec: Record) -> Story:
        fields = {k: v for k, v in rec.items() if k in _STORY_FIELDS}
        fields["terms"] = dict(rec.get("terms", {}))
        fields["entities"] = dict(rec.get("entities", {}))
        fields["bridges"] = dict(rec.get("bridges", {}))
        keywords = rec.get("keywords")  # absent from records written before it was kept
        return cls(
            centroid_sum=decode_vector(rec["centroid_sum"]),
            terms_norm_sq=rec.get("terms_norm_sq"),
            top_terms=None if keywords is None else list(keywords),
            **fields,
        )


_STORY_FIELDS = frozenset(Story.__dataclass_fields__) - {
    "centroid_sum",
    "group_ids",
    "terms_norm_sq",
    "group_matrix",
    "group_rows",
    "top_terms",
}


def _heaviest(weights: dict[str, Any], keep: int) -> dict[str, Any]:
    """The ``keep`` entries of largest value (ties: the larger key), in their old order."""
    best = heapq.nlargest(keep, weights.items(), key=lambda kv: (kv[1], kv[0]))
    kept = {key for key, _ in best}
    return {key: value for key, value in weights.items() if key in kept}


@dataclass(frozen=True, slots=True)
class StoryMerge:
    """Two stories found to be one: ``absorbed_id`` now lives on as ``story_id``.

    The evidence: ``bridges`` articles scored >= merge_score against both; the last of them
    (``article_id``) scored ``score`` (dense ``similarity``) against the absorbed story;
    ``centroid_similarity`` is the cosine of the two centroids before the merge.
    """

    story_id: str
    absorbed_id: str
    article_id: str
    bridges: int
    score: float
    similarity: float
    centroid_similarity: float
    story_size: int  # sizes before the merge
    absorbed_size: int
    event_time: float

    def record(self) -> Record:
        return {
            "decision": "merged",
            "story_id": self.story_id,
            "absorbed_id": self.absorbed_id,
            "article_id": self.article_id,
            "bridges": self.bridges,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "centroid_similarity": round(self.centroid_similarity, 4),
            "story_size": self.story_size,
            "absorbed_size": self.absorbed_size,
            "event_time": self.event_time,
        }


@dataclass
class StateChanges:
    """What to write (``None`` = delete) into the stories / groups / seen tables.

    Stories and groups are held as the engine's live objects and serialised only by
    :meth:`records`: a caller that writes once per batch serialises a story touched by many
    articles once, with its latest state; the offline mode, which writes nothing, never does.
    """

    stories: dict[str, Story | None] = field(default_factory=dict)
    groups: dict[str, Group | None] = field(default_factory=dict)
    seen: dict[str, Record | None] = field(default_factory=dict)
    # Stories merged after the fact by this change, in order (events, not table records).
    merges: list[StoryMerge] = field(default_factory=list)

    def merge(self, later: StateChanges) -> None:
        """Fold ``later`` into these changes: the latest entry (or deletion) per key wins."""
        self.stories.update(later.stories)
        self.groups.update(later.groups)
        self.seen.update(later.seen)
        self.merges.extend(later.merges)

    def records(self) -> dict[str, dict[str, Record | None]]:
        """Table name ("stories", "groups", "seen") -> key -> record (None = delete)."""
        return {
            "stories": {k: v.record() if v else None for k, v in self.stories.items()},
            "groups": {k: v.record() if v else None for k, v in self.groups.items()},
            "seen": dict(self.seen),
        }


class ActiveStories:
    """The active stories, least recently active first, and their near-duplicate groups."""

    def __init__(self) -> None:
        self._stories: OrderedDict[str, Story] = OrderedDict()
        self._groups: dict[str, Group] = {}

    def __len__(self) -> int:
        return len(self._stories)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._stories

    def __iter__(self) -> Iterator[Story]:
        return iter(self._stories.values())

    def get(self, story_id: str) -> Story | None:
        return self._stories.get(story_id)

    def __getitem__(self, story_id: str) -> Story:
        return self._stories[story_id]

    def touch(self, story: Story) -> None:
        """``story`` is now the most recently active."""
        self._stories.move_to_end(story.id)

    def start(self, article: Article, vector: Vector, event_time: float, clock: float) -> Story:
        """A new story whose first article is ``article`` (its centroid: ``vector``)."""
        story = Story(
            id=stable_id("st", article.id),
            centroid_sum=vector.copy(),
            size=1,
            sources={},
            first_seen=event_time,
            last_seen=event_time,
            last_active=clock,
            headline=article.title,
            headline_group_size=0,
        )
        self._stories[story.id] = story
        return story

    def place_in_group(
        self,
        story: Story,
        article: Article,
        vector: Vector,
        dup_threshold: float,
        changes: StateChanges,
    ) -> Group:
        """The story's group whose first member ``vector`` matches at >= ``dup_threshold``,
        grown by one, or a new group; the story's headline follows its largest group."""
        group: Group | None = None
        if story.group_ids:
            searched = story.group_vectors(self._groups)
            sims = searched @ vector
            best = int(np.argmax(sims))
            if sims[best] >= dup_threshold:
                first = len(story.group_ids) - len(searched)
                group = self._groups[story.group_ids[first + best]]
                group.size += 1
        if group is None:
            group = Group(stable_id("dg", article.id), story.id, vector, 1, article.title)
            self._groups[group.id] = group
            story.add_group(group)
        if group.size > story.headline_group_size:
            story.headline, story.headline_group_size = group.title, group.size
        changes.groups[group.id] = group
        return group

    def expire(self, cutoff: float, changes: StateChanges) -> list[Story]:
        """Remove (and return) the stories last active before ``cutoff``, with their groups."""
        gone: list[Story] = []
        while self._stories:
            story = next(iter(self._stories.values()))
            if story.last_active >= cutoff:
                break
            del self._stories[story.id]
            changes.stories[story.id] = None
            for gid in story.group_ids:
                self._groups.pop(gid, None)
                changes.groups[gid] = None
            gone.append(story)
        return gone

    def absorb(self, survivor: Story, absorbed: Story, changes: StateChanges) -> None:
        """Fold ``absorbed`` into ``survivor`` (sums, counts, times, groups) and drop it from
        the active set."""
        survivor.centroid_sum = survivor.centroid_sum + absorbed.centroid_sum
        survivor.size += absorbed.size
        for source, n in absorbed.sources.items():
            survivor.sources[source] = survivor.sources.get(source, 0) + n
        survivor.sources_dropped += absorbed.sources_dropped
        survivor.first_seen = min(survivor.first_seen, absorbed.first_seen)
        survivor.last_seen = max(survivor.last_seen, absorbed.last_seen)
        survivor.last_active = max(survivor.last_active, absorbed.last_active)
        for term, weight in absorbed.terms.items():
            survivor.terms[term] = survivor.terms.get(term, 0.0) + weight
        survivor.terms_norm_sq = survivor.top_terms = None  # recomputed from the sum
        for name, n in absorbed.entities.items():
            survivor.entities[name] = survivor.entities.get(name, 0) + n
        for other, n in absorbed.bridges.items():
            if other != survivor.id:
                survivor.bridges[other] = survivor.bridges.get(other, 0) + n
        survivor.bridges.pop(absorbed.id, None)
        for gid in absorbed.group_ids:
            group = self._groups[gid]
            group.story_id = survivor.id
            survivor.group_ids.append(gid)
            changes.groups[gid] = group
            if group.size > survivor.headline_group_size:
                survivor.headline, survivor.headline_group_size = group.title, group.size
        survivor.group_matrix = None
        del self._stories[absorbed.id]
        changes.stories[absorbed.id] = None
        changes.stories[survivor.id] = survivor

    def restore(self, stories: list[Record], groups: list[Record]) -> list[Story]:
        """Load table records (oldest activity first); returns the restored stories."""
        restored = []
        for rec in sorted(stories, key=lambda r: r["last_active"]):
            story = Story.from_record(rec)
            self._stories[story.id] = story
            restored.append(story)
        for rec in groups:
            if rec["story_id"] in self._stories:
                group = Group.from_record(rec)
                self._groups[group.id] = group
                self._stories[group.story_id].group_ids.append(group.id)
        return restored
