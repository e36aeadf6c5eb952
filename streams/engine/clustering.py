"""Online, single-pass story clustering: each article joins the most similar active story or
starts one, and inside a story joins a near-duplicate group (the same report re-published).

Plain Python + numpy: the Faust agent and the offline CLI run exactly this code. State changes
are returned as records so the agent can mirror them into changelog-backed tables, and
:meth:`StoryEngine.restore` rebuilds the in-memory index from those records after a restart.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from config.settings import Settings
from streams.engine.article import Article, stable_id
from streams.engine.evidence import DocumentFrequencies, TextEvidence, weigh_terms
from streams.engine.story_index import DEFAULT_EXACT_MAX, DEFAULT_PROBES, StoryIndex
from streams.engine.vectors import Vector, decode_vector, encode_vector, unit

__all__ = ["Assignment", "ClusterParams", "StateChanges", "StoryEngine", "story_keywords"]

# Why 5: a story summary a person reads at a glance; also the size of shared-term evidence.
_TOP_TERMS = 5
# Why the article's 4 heaviest terms, skipping terms held by more than 64 stories: a
# partitioned index can miss a story that a headline joins at cosine 0.35-0.5 (10% of UCI
# joins); 99% of joins share terms with their story, and an article's rarest terms name few
# stories. A term in more stories than that does not single one out.
_POSTING_TERMS = 4
_POSTING_MAX_LIST = 64
# Why at most 16 extra stories: each extra cosine reads one centroid from a random place in
# memory (a cache miss per row, ~1.3 us each at 100k stories, where 64 cost a tenth of the
# whole decision); forced on UCI dev, 16 instead of 64 changes F1 by 0.0003 (BENCHMARKS).
_POSTING_STORIES = 16


def story_keywords(profile: dict[str, float]) -> list[str]:
    """The story's top terms by summed TF-IDF weight."""
    best = heapq.nsmallest(_TOP_TERMS, profile.items(), key=lambda kv: (-kv[1], kv[0]))
    return [t for t, _ in best]


def _dot(vector: dict[str, float], profile: dict[str, float]) -> float:
    get = profile.get
    return sum([w * get(t, 0.0) for t, w in vector.items()])


def _weight_then_term(item: tuple[str, float]) -> tuple[float, str]:
    return item[1], item[0]


def _strongest_shared(vector: dict[str, float], profile: dict[str, float]) -> list[str]:
    """The terms contributing most to the article-story lexical similarity."""
    shared = [(w * profile[t], t) for t, w in vector.items() if t in profile]
    return [t for _, t in sorted(shared, key=lambda x: (-x[0], x[1]))[:_TOP_TERMS]]


Decision = Literal["new", "joined", "duplicate"]
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """The clustering knobs (see :class:`config.Settings` for why each default)."""

    story_threshold: float = 0.35
    dup_threshold: float = 0.90
    window_s: float = 72 * 3600.0
    max_event_lead_s: float = 3600.0  # an article's date counts at most this far past its record's
    lexical_weight: float = 0.30
    entity_share: float = 0.10
    entity_min: int = 6
    entity_override: float = 0.90
    candidates: int = 5
    index_exact_max: int = DEFAULT_EXACT_MAX
    index_probes: int = DEFAULT_PROBES

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterParams:
        return cls(
            story_threshold=settings.story_threshold,
            dup_threshold=settings.dup_threshold,
            window_s=settings.story_window_hours * 3600.0,
            max_event_lead_s=settings.max_event_lead_minutes * 60.0,
            lexical_weight=settings.lexical_weight,
            entity_share=settings.entity_share,
            entity_min=settings.entity_min,
            entity_override=settings.entity_override,
            candidates=settings.candidate_stories,
            index_exact_max=settings.index_exact_max,
            index_probes=settings.index_probes,
        )


class _Evidence(NamedTuple):
    """Why an article joins (or not) one candidate story (a tuple: made 5 times an article)."""

    story_id: str
    dense: float
    lexical: float
    score: float
    entity_share: float | None  # None: too few entities in the article to judge
    accepted: bool


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


@dataclass
class StateChanges:
    """What to write (``None`` = delete) into the stories / groups / seen tables.

    Stories and groups are held as the engine's live objects and serialised only by
    :meth:`records`: a caller that writes once per batch serialises a story touched by many
    articles once, with its latest state; the offline mode, which writes nothing, never does.
    """

    stories: dict[str, _Story | None] = field(default_factory=dict)
    groups: dict[str, _Group | None] = field(default_factory=dict)
    seen: dict[str, Record | None] = field(default_factory=dict)

    def merge(self, later: StateChanges) -> None:
        """Fold ``later`` into these changes: the latest entry (or deletion) per key wins."""
        self.stories.update(later.stories)
        self.groups.update(later.groups)
        self.seen.update(later.seen)

    def records(self) -> dict[str, dict[str, Record | None]]:
        """Table name ("stories", "groups", "seen") -> key -> record (None = delete)."""
        return {
            "stories": {k: v.record() if v else None for k, v in self.stories.items()},
            "groups": {k: v.record() if v else None for k, v in self.groups.items()},
            "seen": dict(self.seen),
        }


@dataclass(slots=True)
class _Group:
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


@dataclass(slots=True)
class _Story:
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
        self.terms_norm_sq = self.profile_norm_sq() + 2 * _dot(term_vec, profile) + 1.0
        added = [term for term in term_vec if term not in profile]
        for term, weight in term_vec.items():
            profile[term] = profile.get(term, 0.0) + weight
        if self.top_terms is not None:
            pool = set(self.top_terms).union(term_vec)
            self.top_terms = heapq.nsmallest(_TOP_TERMS, pool, key=lambda t: (-profile[t], t))
        return added

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
        }

    @classmethod
    def from_record(cls, rec: Record) -> _Story:
        fields = {k: v for k, v in rec.items() if k in _STORY_FIELDS}
        fields["terms"] = dict(rec.get("terms", {}))
        fields["entities"] = dict(rec.get("entities", {}))
        keywords = rec.get("keywords")  # absent from records written before it was kept
        return cls(
            centroid_sum=decode_vector(rec["centroid_sum"]),
            terms_norm_sq=rec.get("terms_norm_sq"),
            top_terms=None if keywords is None else list(keywords),
            **fields,
        )


_STORY_FIELDS = frozenset(_Story.__dataclass_fields__) - {
    "centroid_sum",
    "group_ids",
    "terms_norm_sq",
    "group_matrix",
    "top_terms",
}


def _where(seen: Record) -> Record:
    """The part of a seen record a later copy of the same text needs."""
    return {"story_id": seen["story_id"], "group_id": seen["group_id"], "ts": seen["ts"]}


class StoryEngine:
    """Holds active stories and assigns each new article; see the module docstring."""

    def __init__(self, params: ClusterParams) -> None:
        self.params = params
        self.clock = float("-inf")
        self._stories: OrderedDict[str, _Story] = OrderedDict()  # least recently active first
        self._groups: dict[str, _Group] = {}
        self._seen: OrderedDict[str, Record] = OrderedDict()  # "id:<id>" -> record, oldest first
        # content key -> where that text went; derived from the seen records (their "content"
        # field), so it costs no table write of its own.
        self._content: OrderedDict[str, Record] = OrderedDict()
        self._index: StoryIndex | None = None
        self._term_df = DocumentFrequencies()
        self._entity_df = DocumentFrequencies()
        # term -> ids of the active stories whose term profile has it: a second source of
        # candidates once the dense index is partitioned (approximate).
        self._postings: dict[str, set[str]] = {}

    @property
    def active_stories(self) -> int:
        return len(self._stories)

    def centroid(self, story_id: str) -> Vector | None:
        """The unit centroid of an active story (what a semantic subscription is matched
        against), or None once the story has left the active window."""
        story = self._stories.get(story_id)
        return None if story is None else unit(story.centroid_sum)

    def process(
        self,
        article: Article,
        vector: Vector,
        record_ts: float,
        text_evidence: TextEvidence | None = None,
    ) -> tuple[Assignment | None, StateChanges]:
        """Assign ``article`` (with its embedding) arriving at ``record_ts`` (epoch seconds).
        ``text_evidence``: ``TextEvidence.of(article.title, article.text)`` if already computed
        (the embed stage sends it); computed here otherwise, with the same result.

        Returns ``None`` for an exact re-send of an article id already assigned.
        """
        changes = StateChanges()
        # A date far past the stream time is a mistake, not news from the future: cut it, so
        # it cannot move the clock past every active story's window.
        event_time = min(article.event_time(record_ts), record_ts + self.params.max_event_lead_s)
        self.clock = max(self.clock, event_time)
        self._expire(changes)
        id_key = f"id:{article.id}"
        if id_key in self._seen:
            return None, changes
        vector = unit(vector)
        index = self._ensure_index(vector.shape[0])
        if text_evidence is None:
            text_evidence = TextEvidence.of(article.title, article.text)
        content_key = text_evidence.content_key
        same_content = self._content.get(content_key)
        if same_content is not None and same_content["story_id"] in self._stories:
            story = self._stories[same_content["story_id"]]
            assignment = self._assignment(
                article=article,
                story=story,
                group_id=same_content["group_id"],
                decision="duplicate",
                similarity=1.0,
                event_time=event_time,
            )
            self._remember(id_key, story.id, same_content["group_id"], changes)
            return assignment, changes

        counts = text_evidence.term_counts
        article_terms = set(counts)
        article_entities = set(text_evidence.entities)
        self._term_df.add(article_terms)
        self._entity_df.add(article_entities)
        term_vec = weigh_terms(counts, self._term_df)
        candidates = index.candidates(vector, self.params.candidates)
        if index.partitioned:
            candidates = self._with_lexical_candidates(candidates, vector, term_vec)
        name_weights = self._name_weights(article_entities)
        evidence = [
            self._weigh(self._stories[sid], dense, term_vec, name_weights)
            for sid, dense in candidates
        ]
        accepted = [e for e in evidence if e.accepted]
        chosen = max(accepted, key=lambda e: e.score) if accepted else None
        decision: Decision
        if chosen is not None:
            story = self._stories[chosen.story_id]
            decision = "joined"
            story.centroid_sum = story.centroid_sum + vector
            story.size += 1
        else:
            story = self._new_story(article, vector, event_time)
            decision = "new"
        shared = _strongest_shared(term_vec, story.terms) if chosen else []
        self._absorb_evidence(story, term_vec, article_entities)
        self._update_times(story, event_time, article.source_name)
        group = self._place_in_group(story, article, vector, changes)
        # A new story's centroid is its first article's vector: the same object the index
        # was just queried with, whose coarse scores it reuses.
        index.upsert(story.id, vector if chosen is None else unit(story.centroid_sum))
        self._stories.move_to_end(story.id)
        changes.stories[story.id] = story
        self._remember(
            id_key,
            story.id,
            group.id,
            changes,
            terms=sorted(article_terms),
            entities=sorted(article_entities),
            content=content_key,
        )
        # A new story names the closest story it did not join, and why not (score, names).
        rejected = max(evidence, key=lambda e: e.score) if chosen is None and evidence else None
        return self._assignment(
            article=article,
            story=story,
            group_id=group.id,
            decision=decision,
            similarity=chosen.dense if chosen else 1.0,
            event_time=event_time,
            lexical=chosen.lexical if chosen else 1.0,
            entity_share=chosen.entity_share if chosen else None,
            shared_terms=shared,
            rejected=rejected,
        ), changes

    def _name_weights(self, names: set[str]) -> dict[str, float]:
        """IDF of each of the article's entities; empty when too few to judge by."""
        if len(names) < self.params.entity_min:
            return {}
        return {name: self._entity_df.idf(name) for name in names}

    def _weigh(
        self, story: _Story, dense: float, term_vec: dict[str, float], names: dict[str, float]
    ) -> _Evidence:
        """Dense cosine plus weighted lexical cosine must clear the story bar; an article with
        enough entities (``names``: entity -> IDF) must also share some of the story's usual
        ones (different events of the same kind share the topic, not the names and numbers)."""
        params = self.params
        norm_sq = story.profile_norm_sq()
        lexical = _dot(term_vec, story.terms) / math.sqrt(norm_sq) if norm_sq > 0 else 0.0
        score = dense + params.lexical_weight * lexical
        accepted = score >= params.story_threshold
        share: float | None = None
        total = sum(names.values())
        if total > 0:
            mentioned = sum(w * story.entities.get(n, 0) for n, w in names.items())
            share = mentioned / (total * story.size)
            if accepted and score < params.entity_override:
                accepted = share >= params.entity_share
        return _Evidence(story.id, dense, lexical, score, share, accepted)

    def _absorb_evidence(self, story: _Story, term_vec: dict[str, float], names: set[str]) -> None:
        """Add an article's TF-IDF vector and entities to its story's profile."""
        postings = self._postings
        for term in story.add_terms(term_vec):
            holders = postings.get(term)
            if holders is None:
                postings[term] = {story.id}
            else:
                holders.add(story.id)
        for name in names:
            story.entities[name] = story.entities.get(name, 0) + 1

    def _with_lexical_candidates(
        self, found: list[tuple[str, float]], vector: Vector, term_vec: dict[str, float]
    ) -> list[tuple[str, float]]:
        """The top candidates by cosine among the index's and the stories sharing the
        article's heaviest terms (exact cosines for both)."""
        index = self._index
        assert index is not None
        have = {sid for sid, _ in found}
        extra: list[str] = []
        # sorted()[:n] is what heapq.nlargest documents itself to equal, cheaper for ~10 terms
        heaviest = sorted(term_vec.items(), key=_weight_then_term, reverse=True)[:_POSTING_TERMS]
        for term, _ in heaviest:
            holders = self._postings.get(term, ())
            if len(holders) > _POSTING_MAX_LIST:
                continue
            extra.extend(sorted(sid for sid in holders if sid not in have))
            have.update(holders)
            if len(extra) >= _POSTING_STORIES:
                break
        if not extra:
            return found
        extra = extra[:_POSTING_STORIES]
        merged = found + list(zip(extra, index.similarities(extra, vector), strict=True))
        merged.sort(key=lambda kv: -kv[1])
        return merged[: self.params.candidates]

    def restore(self, stories: list[Record], groups: list[Record], seen: dict[str, Record]) -> None:
        """Rebuild the state from table records (after a restart or a rebalance)."""
        self.__init__(self.params)  # type: ignore[misc]
        for rec in sorted(stories, key=lambda r: r["last_active"]):
            story = _Story.from_record(rec)
            self._stories[story.id] = story
            for term in story.terms:
                self._postings.setdefault(term, set()).add(story.id)
            self.clock = max(self.clock, story.last_seen)
            index = self._ensure_index(story.centroid_sum.shape[0])
            index.upsert(story.id, unit(story.centroid_sum))
        for rec in groups:
            if rec["story_id"] in self._stories:
                group = _Group(
                    rec["id"],
                    rec["story_id"],
                    decode_vector(rec["vector"]),
                    rec["size"],
                    rec["title"],
                )
                self._groups[group.id] = group
                self._stories[group.story_id].group_ids.append(group.id)
        for key, rec in sorted(seen.items(), key=lambda kv: kv[1]["ts"]):
            self._seen[key] = rec
            if "content" in rec:
                self._content[rec["content"]] = _where(rec)
            if "terms" in rec:
                self._term_df.add(rec["terms"])
                self._entity_df.add(rec["entities"])

    def _forget_frequencies(self, rec: Record) -> None:
        """An article left the window: it no longer counts in the document frequencies."""
        if "terms" in rec:
            self._term_df.remove(rec["terms"])
            self._entity_df.remove(rec["entities"])

    # -- internals -----------------------------------------------------------------------

    def _ensure_index(self, dim: int) -> StoryIndex:
        if self._index is None:
            self._index = StoryIndex(
                dim, exact_max=self.params.index_exact_max, probes=self.params.index_probes
            )
        return self._index

    def _new_story(self, article: Article, vector: Vector, event_time: float) -> _Story:
        story = _Story(
            id=stable_id("st", article.id),
            centroid_sum=vector.copy(),
            size=1,
            sources={},
            first_seen=event_time,
            last_seen=event_time,
            last_active=self.clock,
            headline=article.title,
            headline_group_size=0,
        )
        self._stories[story.id] = story
        return story

    def _update_times(self, story: _Story, event_time: float, source: str) -> None:
        story.first_seen = min(story.first_seen, event_time)
        story.last_seen = max(story.last_seen, event_time)
        story.last_active = self.clock
        story.sources[source] = story.sources.get(source, 0) + 1

    def _place_in_group(
        self, story: _Story, article: Article, vector: Vector, changes: StateChanges
    ) -> _Group:
        group: _Group | None = None
        if story.group_ids:
            if story.group_matrix is None or len(story.group_matrix) != len(story.group_ids):
                story.group_matrix = np.stack([self._groups[g].vector for g in story.group_ids])
            sims = story.group_matrix @ vector
            best = int(np.argmax(sims))
            if sims[best] >= self.params.dup_threshold:
                group = self._groups[story.group_ids[best]]
                group.size += 1
        if group is None:
            group = _Group(stable_id("dg", article.id), story.id, vector, 1, article.title)
            self._groups[group.id] = group
            story.group_ids.append(group.id)
            if story.group_matrix is not None:
                story.group_matrix = np.vstack([story.group_matrix, vector])
        if group.size > story.headline_group_size:
            story.headline, story.headline_group_size = group.title, group.size
        changes.groups[group.id] = group
        return group

    def _remember(
        self, key: str, story_id: str, group_id: str, changes: StateChanges, **extra: Any
    ) -> None:
        rec = {"story_id": story_id, "group_id": group_id, "ts": self.clock, **extra}
        self._seen[key] = rec
        changes.seen[key] = rec
        if "content" in rec:
            self._content[rec["content"]] = _where(rec)

    def _expire(self, changes: StateChanges) -> None:
        cutoff = self.clock - self.params.window_s
        while self._stories:
            story = next(iter(self._stories.values()))
            if story.last_active >= cutoff:
                break
            del self._stories[story.id]
            changes.stories[story.id] = None
            for term in story.terms:
                holders = self._postings.get(term)
                if holders is not None:
                    holders.discard(story.id)
                    if not holders:
                        del self._postings[term]
            if self._index is not None:
                self._index.remove(story.id)
            for gid in story.group_ids:
                self._groups.pop(gid, None)
                changes.groups[gid] = None
        while self._seen:
            key, rec = next(iter(self._seen.items()))
            if rec["ts"] >= cutoff:
                break
            del self._seen[key]
            changes.seen[key] = None
            self._forget_frequencies(rec)
        while self._content and next(iter(self._content.values()))["ts"] < cutoff:
            self._content.popitem(last=False)

    def _assignment(
        self,
        *,
        article: Article,
        story: _Story,
        group_id: str,
        decision: Decision,
        similarity: float,
        event_time: float,
        lexical: float = 1.0,
        entity_share: float | None = None,
        shared_terms: list[str] | None = None,
        rejected: _Evidence | None = None,
    ) -> Assignment:
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
            source_count=len(story.sources),
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
