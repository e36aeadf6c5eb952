"""Online, single-pass story clustering: each article joins the most similar active story or
starts one, and inside a story joins a near-duplicate group (the same report re-published).

Plain Python + numpy: the Faust agent and the offline CLI run exactly this code. State changes
are returned as records so the agent can mirror them into changelog-backed tables, and
:meth:`StoryEngine.restore` rebuilds the in-memory index from those records after a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from config.settings import Settings
from streams.engine.article import Article, stable_id
from streams.engine.story_index import StoryIndex
from streams.engine.vectors import Vector, decode_vector, encode_vector, unit

__all__ = ["Assignment", "ClusterParams", "StateChanges", "StoryEngine"]

Decision = Literal["new", "joined", "duplicate"]
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """The clustering knobs (see :class:`config.Settings` for why each default)."""

    story_threshold: float = 0.55
    dup_threshold: float = 0.90
    window_s: float = 72 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterParams:
        return cls(
            story_threshold=settings.story_threshold,
            dup_threshold=settings.dup_threshold,
            window_s=settings.story_window_hours * 3600.0,
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """The decision for one article: the payload of a ``stories`` event."""

    article_id: str
    story_id: str
    dup_group_id: str
    decision: Decision
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


@dataclass
class StateChanges:
    """Records to write (``None`` = delete) into the stories / groups / seen tables."""

    stories: dict[str, Record | None] = field(default_factory=dict)
    groups: dict[str, Record | None] = field(default_factory=dict)
    seen: dict[str, Record | None] = field(default_factory=dict)


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
    dated_lo: float | None
    dated_hi: float | None
    headline: str
    headline_group_size: int
    group_ids: list[str] = field(default_factory=list)

    def record(self) -> Record:
        return {
            "id": self.id,
            "centroid_sum": encode_vector(self.centroid_sum),
            "size": self.size,
            "sources": self.sources,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_active": self.last_active,
            "dated_lo": self.dated_lo,
            "dated_hi": self.dated_hi,
            "headline": self.headline,
            "headline_group_size": self.headline_group_size,
        }

    @classmethod
    def from_record(cls, rec: Record) -> _Story:
        fields = {k: v for k, v in rec.items() if k != "centroid_sum"}
        return cls(centroid_sum=decode_vector(rec["centroid_sum"]), **fields)


class StoryEngine:
    """Holds active stories and assigns each new article; see the module docstring."""

    def __init__(self, params: ClusterParams) -> None:
        self.params = params
        self.clock = float("-inf")
        self._stories: OrderedDict[str, _Story] = OrderedDict()  # least recently active first
        self._groups: dict[str, _Group] = {}
        self._seen: OrderedDict[str, Record] = OrderedDict()  # oldest first
        self._index: StoryIndex | None = None

    @property
    def active_stories(self) -> int:
        return len(self._stories)

    def process(
        self, article: Article, vector: Vector, record_ts: float
    ) -> tuple[Assignment | None, StateChanges]:
        """Assign ``article`` (with its embedding) arriving at ``record_ts`` (epoch seconds).

        Returns ``None`` for an exact re-send of an article id already assigned.
        """
        changes = StateChanges()
        event_time = article.event_time(record_ts)
        self.clock = max(self.clock, event_time)
        self._expire(changes)
        id_key = f"id:{article.id}"
        if id_key in self._seen:
            return None, changes
        vector = unit(np.asarray(vector, dtype=np.float32))
        index = self._ensure_index(vector.shape[0])
        same_content = self._seen.get(article.content_key)
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

        published = article.published_at.timestamp() if article.published_at else None
        best = index.nearest(vector, published, self.params.window_s)
        decision: Decision
        if best is not None and best[1] >= self.params.story_threshold:
            story = self._stories[best[0]]
            similarity, decision = best[1], "joined"
            story.centroid_sum = story.centroid_sum + vector
            story.size += 1
        else:
            story = self._new_story(article, vector, event_time)
            similarity, decision = 1.0, "new"
        self._update_times(story, event_time, published, article.source_name)
        group = self._place_in_group(story, article, vector, changes)
        index.upsert(story.id, unit(story.centroid_sum), story.dated_lo, story.dated_hi)
        self._stories.move_to_end(story.id)
        changes.stories[story.id] = story.record()
        self._remember(id_key, story.id, group.id, changes)
        self._remember(article.content_key, story.id, group.id, changes)
        assignment = self._assignment(
            article=article,
            story=story,
            group_id=group.id,
            decision=decision,
            similarity=similarity,
            event_time=event_time,
        )
        return assignment, changes

    def restore(self, stories: list[Record], groups: list[Record], seen: dict[str, Record]) -> None:
        """Rebuild the state from table records (after a restart or a rebalance)."""
        self.__init__(self.params)  # type: ignore[misc]
        for rec in sorted(stories, key=lambda r: r["last_active"]):
            story = _Story.from_record(rec)
            self._stories[story.id] = story
            self.clock = max(self.clock, story.last_seen)
            index = self._ensure_index(story.centroid_sum.shape[0])
            index.upsert(story.id, unit(story.centroid_sum), story.dated_lo, story.dated_hi)
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

    # -- internals -----------------------------------------------------------------------

    def _ensure_index(self, dim: int) -> StoryIndex:
        if self._index is None:
            self._index = StoryIndex(dim)
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
            dated_lo=None,
            dated_hi=None,
            headline=article.title,
            headline_group_size=0,
        )
        self._stories[story.id] = story
        return story

    def _update_times(
        self, story: _Story, event_time: float, published: float | None, source: str
    ) -> None:
        story.first_seen = min(story.first_seen, event_time)
        story.last_seen = max(story.last_seen, event_time)
        story.last_active = self.clock
        if published is not None:
            story.dated_lo = published if story.dated_lo is None else min(story.dated_lo, published)
            story.dated_hi = published if story.dated_hi is None else max(story.dated_hi, published)
        story.sources[source] = story.sources.get(source, 0) + 1

    def _place_in_group(
        self, story: _Story, article: Article, vector: Vector, changes: StateChanges
    ) -> _Group:
        group: _Group | None = None
        if story.group_ids:
            members = [self._groups[g] for g in story.group_ids]
            sims = np.stack([g.vector for g in members]) @ vector
            best = int(np.argmax(sims))
            if sims[best] >= self.params.dup_threshold:
                group = members[best]
                group.size += 1
        if group is None:
            group = _Group(stable_id("dg", article.id), story.id, vector, 1, article.title)
            self._groups[group.id] = group
            story.group_ids.append(group.id)
        if group.size > story.headline_group_size:
            story.headline, story.headline_group_size = group.title, group.size
        changes.groups[group.id] = group.record()
        return group

    def _remember(self, key: str, story_id: str, group_id: str, changes: StateChanges) -> None:
        rec = {"story_id": story_id, "group_id": group_id, "ts": self.clock}
        self._seen[key] = rec
        changes.seen[key] = rec

    def _expire(self, changes: StateChanges) -> None:
        cutoff = self.clock - self.params.window_s
        while self._stories:
            story = next(iter(self._stories.values()))
            if story.last_active >= cutoff:
                break
            del self._stories[story.id]
            changes.stories[story.id] = None
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

    def _assignment(
        self,
        *,
        article: Article,
        story: _Story,
        group_id: str,
        decision: Decision,
        similarity: float,
        event_time: float,
    ) -> Assignment:
        return Assignment(
            article_id=article.id,
            story_id=story.id,
            dup_group_id=group_id,
            decision=decision,
            similarity=round(similarity, 4),
            story_size=story.size,
            source_count=len(story.sources),
            first_seen=story.first_seen,
            last_seen=story.last_seen,
            headline=story.headline,
            event_time=event_time,
            source=article.source_name,
            url=article.url,
            title=article.title,
        )
