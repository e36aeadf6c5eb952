"""Online, single-pass story clustering: each article joins the most similar active story or
starts one, and inside a story joins a near-duplicate group (the same report re-published).

Plain Python + numpy: the Faust agent and the offline CLI run exactly this code. State changes
are returned as records so the agent can mirror them into changelog-backed tables, and
:meth:`StoryEngine.restore` rebuilds the in-memory index from those records after a restart.

This module is the orchestration; each kind of state has its own module:
:mod:`~streams.engine.story_state` (stories, groups, their records),
:mod:`~streams.engine.scoring` (the join score, its evidence, the window's frequencies),
:mod:`~streams.engine.term_postings`, :mod:`~streams.engine.content_memory` (seen ids and
exact re-sends) and :mod:`~streams.engine.story_index` (the dense candidates).
"""

from __future__ import annotations

from streams.engine.article import Article
from streams.engine.assignment import Assignment, Decision, assignment_for
from streams.engine.content_memory import ContentMemory
from streams.engine.evidence import DocumentFrequencies, TextEvidence, weigh_terms
from streams.engine.params import ClusterParams
from streams.engine.scoring import JoinEvidence, WindowFrequencies, strongest_shared, weigh
from streams.engine.story_index import StoryIndex
from streams.engine.story_state import (
    ActiveStories,
    Group,
    Record,
    StateChanges,
    Story,
    StoryMerge,
    story_keywords,
)
from streams.engine.term_postings import TermPostings
from streams.engine.vectors import Vector, unit

__all__ = [
    "Assignment",
    "ClusterParams",
    "Decision",
    "Group",
    "JoinEvidence",
    "StateChanges",
    "Story",
    "StoryEngine",
    "StoryMerge",
    "story_keywords",
]


class StoryEngine:
    """Holds active stories and assigns each new article; see the module docstring."""

    def __init__(self, params: ClusterParams) -> None:
        self.params = params
        self.clock = float("-inf")
        self._stories = ActiveStories()
        self._memory = ContentMemory()
        self._index: StoryIndex | None = None
        self._frequencies = WindowFrequencies()
        self._postings = TermPostings()

    # -- read-only views (tests, benchmarks, subscriptions) --------------------------------

    @property
    def active_stories(self) -> int:
        return len(self._stories)

    def story(self, story_id: str) -> Story | None:
        """The live state of an active story (do not modify it), or None."""
        return self._stories.get(story_id)

    @property
    def term_frequencies(self) -> DocumentFrequencies:
        """Document frequencies of terms over the articles in the window (read only)."""
        return self._frequencies.terms

    @property
    def entity_frequencies(self) -> DocumentFrequencies:
        """Document frequencies of names and numbers over the articles in the window."""
        return self._frequencies.entities

    @property
    def postings(self) -> TermPostings:
        """Term -> active stories holding it (read only)."""
        return self._postings

    @property
    def index(self) -> StoryIndex | None:
        """The dense index of story centroids (None before the first article)."""
        return self._index

    def centroid(self, story_id: str) -> Vector | None:
        """The unit centroid of an active story (what a semantic subscription is matched
        against), or None once the story has left the active window."""
        story = self._stories.get(story_id)
        return None if story is None else unit(story.centroid_sum)

    def evidence(self, story_id: str, dense: float, text: TextEvidence) -> JoinEvidence:
        """How an article with ``text`` and dense cosine ``dense`` would be weighed against
        an active story now (no state changes; the article's own terms are not counted in
        the frequencies unless it was processed)."""
        term_vec = weigh_terms(text.term_counts, self._frequencies.terms)
        names = self._frequencies.name_weights(set(text.entities), self.params.entity_min)
        return weigh(self._stories[story_id], dense, term_vec, names, self.params)

    # -- the decision ----------------------------------------------------------------------

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
        id_key = ContentMemory.key(article.id)
        if self._memory.seen(id_key):
            return None, changes
        vector = unit(vector)
        index = self._ensure_index(vector.shape[0])
        if text_evidence is None:
            text_evidence = TextEvidence.of(article.title, article.text)
        content_key = text_evidence.content_key
        same_content = self._memory.where_content(content_key)
        if same_content is not None and same_content["story_id"] in self._stories:
            story = self._stories[same_content["story_id"]]
            assignment = assignment_for(
                article=article,
                story=story,
                group_id=same_content["group_id"],
                decision="duplicate",
                similarity=1.0,
                event_time=event_time,
            )
            self._memory.remember(id_key, story.id, same_content["group_id"], self.clock, changes)
            return assignment, changes

        counts = text_evidence.term_counts
        article_terms = set(counts)
        article_entities = set(text_evidence.entities)
        self._frequencies.add(article_terms, article_entities)
        term_vec = weigh_terms(counts, self._frequencies.terms)
        candidates = index.candidates(vector, self.params.candidates)
        if index.partitioned:
            candidates = self._with_lexical_candidates(candidates, vector, term_vec)
        if self.params.window_both_ways:
            candidates = self._in_span(candidates, event_time)
        name_weights = self._frequencies.name_weights(article_entities, self.params.entity_min)
        evidence = [
            weigh(self._stories[sid], dense, term_vec, name_weights, self.params)
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
            story = self._stories.start(article, vector, event_time, self.clock)
            decision = "new"
        shared = strongest_shared(term_vec, story.terms) if chosen else []
        self._add_to_profile(story, term_vec, article_entities, event_time, article.source_name)
        group = self._stories.place_in_group(
            story, article, vector, self.params.dup_threshold, changes
        )
        # A new story's centroid is its first article's vector: the same object the index
        # was just queried with, whose coarse scores it reuses.
        index.upsert(story.id, vector if chosen is None else unit(story.centroid_sum))
        self._stories.touch(story)
        changes.stories[story.id] = story
        if chosen is not None and self.params.merge_bridges > 0:
            story = self._merge_bridged(story, article.id, evidence, event_time, changes)
        self._memory.remember(
            id_key,
            story.id,
            group.id,
            self.clock,
            changes,
            terms=sorted(article_terms),
            entities=sorted(article_entities),
            content=content_key,
        )
        # A new story names the closest story it did not join, and why not (score, names).
        rejected = max(evidence, key=lambda e: e.score) if chosen is None and evidence else None
        return assignment_for(
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

    def _merge_bridged(
        self,
        story: Story,
        article_id: str,
        evidence: list[JoinEvidence],
        event_time: float,
        changes: StateChanges,
    ) -> Story:
        """The article joined ``story``; every other candidate it also scored >= merge_score
        against (and would have been allowed to join; when the article has enough names to
        judge, sharing at least ``merge_entity_share`` of them) gains a bridge. Once two
        stories have ``merge_bridges`` bridges between them, the smaller is folded into the
        larger (at most one merge per article). Returns the story the article is now in."""
        params = self.params
        for other_ev in sorted(evidence, key=lambda e: -e.score):
            other = self._stories.get(other_ev.story_id)
            if (
                other is None
                or other is story
                or not other_ev.accepted
                or other_ev.score < params.merge_score
                or (
                    other_ev.entity_share is not None
                    and other_ev.entity_share < params.merge_entity_share
                )
            ):
                continue
            story.bridges[other.id] = story.bridges.get(other.id, 0) + 1
            bridges = story.bridges[other.id] + other.bridges.get(story.id, 0)
            if bridges < params.merge_bridges:
                continue
            # The larger story survives (ties: the one the article joined).
            survivor, absorbed = (other, story) if other.size > story.size else (story, other)
            centroids = float(unit(survivor.centroid_sum) @ unit(absorbed.centroid_sum))
            merge = StoryMerge(
                story_id=survivor.id,
                absorbed_id=absorbed.id,
                article_id=article_id,
                bridges=bridges,
                score=other_ev.score,
                similarity=other_ev.dense,
                centroid_similarity=centroids,
                story_size=survivor.size,
                absorbed_size=absorbed.size,
                event_time=event_time,
            )
            self._stories.absorb(survivor, absorbed, changes)
            survivor.last_active = self.clock
            self._stories.touch(survivor)
            self._postings.remove(absorbed.id, absorbed.terms)
            self._postings.add(survivor.id, absorbed.terms)
            self._postings.remove(survivor.id, survivor.trim())
            index = self._index
            assert index is not None
            index.remove(absorbed.id)
            index.upsert(survivor.id, unit(survivor.centroid_sum))
            changes.merges.append(merge)
            return survivor
        return story

    def _in_span(
        self, candidates: list[tuple[str, float]], event_time: float
    ) -> list[tuple[str, float]]:
        """The candidates whose span an article of ``event_time`` can belong to: dated no
        more than a window before the story's first article nor after its last
        (``window_both_ways``). Expiry bounds a story by the stream's clock only, so an
        article dated years before a story (an old report re-sent, a past event of the same
        kind) could join it, and so could a current report join a story of such articles
        while the clock keeps it active; both start their own story instead."""
        window = self.params.window_s
        stories = self._stories
        return [
            (sid, dense)
            for sid, dense in candidates
            if stories[sid].first_seen - window <= event_time <= stories[sid].last_seen + window
        ]

    def _with_lexical_candidates(
        self, found: list[tuple[str, float]], vector: Vector, term_vec: dict[str, float]
    ) -> list[tuple[str, float]]:
        """The top candidates by cosine among the index's and the stories sharing the
        article's heaviest terms (exact cosines for both)."""
        index = self._index
        assert index is not None
        extra = self._postings.extra_candidates(term_vec, {sid for sid, _ in found})
        if not extra:
            return found
        merged = found + list(zip(extra, index.similarities(extra, vector), strict=True))
        merged.sort(key=lambda kv: -kv[1])
        return merged[: self.params.candidates]

    def restore(self, stories: list[Record], groups: list[Record], seen: dict[str, Record]) -> None:
        """Rebuild the state from table records (after a restart or a rebalance)."""
        self.__init__(self.params)  # type: ignore[misc]
        for story in self._stories.restore(stories, groups):
            self._postings.add(story.id, story.terms)
            self.clock = max(self.clock, story.last_seen)
            index = self._ensure_index(story.centroid_sum.shape[0])
            index.upsert(story.id, unit(story.centroid_sum))
        for rec in self._memory.restore(seen):
            self._frequencies.remember(rec)

    # -- internals -----------------------------------------------------------------------

    def _ensure_index(self, dim: int) -> StoryIndex:
        if self._index is None:
            self._index = StoryIndex(
                dim, exact_max=self.params.index_exact_max, probes=self.params.index_probes
            )
        return self._index

    def _add_to_profile(
        self,
        story: Story,
        term_vec: dict[str, float],
        names: set[str],
        event_time: float,
        source: str,
    ) -> None:
        """An article joins ``story``'s profile: its terms (and postings), names, times and
        outlet; then the profile is trimmed to its bounds."""
        self._postings.add(story.id, story.add_terms(term_vec))
        story.add_entities(names)
        story.first_seen = min(story.first_seen, event_time)
        story.last_seen = max(story.last_seen, event_time)
        story.last_active = self.clock
        story.sources[source] = story.sources.get(source, 0) + 1
        self._postings.remove(story.id, story.trim())

    def _expire(self, changes: StateChanges) -> None:
        cutoff = self.clock - self.params.window_s
        for story in self._stories.expire(cutoff, changes):
            self._postings.remove(story.id, story.terms)
            if self._index is not None:
                self._index.remove(story.id)
        for rec in self._memory.expire(cutoff, changes):
            self._frequencies.forget(rec)
