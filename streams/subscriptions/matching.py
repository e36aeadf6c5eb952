"""Which subscriptions a story event fires: keyword, semantic, source and size rules, and the
new_story / emerging / growth triggers, each fired at most once per story (growth: per step).

Pure: no I/O. The caller keeps one :class:`StoryMatchState` per story (JSON round trip for a
changelog table), computes the story's semantic scores with :class:`SemanticIndex`, and calls
:meth:`Matcher.observe` once per story event.

Each event evaluates only its candidate rules, found through indexes: the rules that use a
phrase the story contains (so far), the rules whose query scored at or above its threshold,
and the rules with neither keywords nor a query (filter-only rules, checked on every event).
A rule outside these can never match the event, so the result is the full scan's.

Keywords accumulate over the story: the state remembers which subscribed phrases any of its
articles contained, so ``all: ["a", "b"]`` matches once one article had "a" and another "b",
and ``none`` fails the story for good once any article had the phrase. A phrase added to a
subscription later counts from the next article on (past articles are not re-read).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from config.exceptions import StorywatchError
from streams.subscriptions.model import Subscription

__all__ = [
    "MAX_STORY_SOURCES",
    "FiredTriggers",
    "KeywordIndex",
    "Match",
    "Matcher",
    "SemanticIndex",
    "SemanticIndexError",
    "StoryMatchState",
    "StoryUpdate",
    "phrase_key",
    "phrase_tokens",
]

# Why 1,000: a story's distinct outlets are kept to check allow/deny lists on later events,
# and a wire story can reach thousands (UCI: 1,900 publishers in three days); past 1,000 the
# deny rule is long satisfied and memory per story must stay bounded. A source arriving after
# the cap still counts on its own event, not on later ones. min_sources reads the engine's
# own source_count, not this set.
MAX_STORY_SOURCES = 1000

# A word: a run of Unicode letters or digits (not "_"), so "Putin's" reads as "putin", "s".
_WORD = re.compile(r"[^\W_]+")


class SemanticIndexError(StorywatchError, ValueError):
    """The query matrix does not fit the subscriptions or the story vectors."""


def phrase_tokens(text: str) -> tuple[str, ...]:
    """Casefolded word tokens (NFKC first, so composed and decomposed accents agree)."""
    return tuple(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def phrase_key(phrase: str) -> str:
    """The normalized phrase: its tokens joined by one space."""
    return " ".join(phrase_tokens(phrase))


@dataclass(frozen=True, slots=True)
class _Phrase:
    """One distinct phrase of the index and the subscriptions that use it."""

    tokens: tuple[str, ...]
    key: str
    subscription_ids: frozenset[str]


class KeywordIndex:
    """Every subscribed phrase, indexed by its first token."""

    def __init__(self, by_first: Mapping[str, Sequence[_Phrase]]) -> None:
        self._by_first = {first: tuple(entries) for first, entries in by_first.items()}

    @classmethod
    def build(cls, subscriptions: Iterable[Subscription]) -> KeywordIndex:
        """The phrases of the enabled ``subscriptions``."""
        users: dict[tuple[str, ...], set[str]] = {}
        for sub in subscriptions:
            if not sub.enabled:
                continue
            for phrase in sub.filter.keywords.phrases:
                tokens = phrase_tokens(phrase)
                if tokens:  # validation guarantees one; an empty phrase can never match
                    users.setdefault(tokens, set()).add(sub.id)
        by_first: dict[str, list[_Phrase]] = {}
        for tokens, ids in users.items():
            entry = _Phrase(tokens, " ".join(tokens), frozenset(ids))
            by_first.setdefault(tokens[0], []).append(entry)
        return cls(by_first)

    @property
    def keys(self) -> frozenset[str]:
        """Every phrase key in the index."""
        return frozenset(e.key for entries in self._by_first.values() for e in entries)

    def find(self, tokens: Sequence[str]) -> set[str]:
        """The keys of the phrases that occur in ``tokens`` as whole, consecutive tokens."""
        found: set[str] = set()
        for i, token in enumerate(tokens):
            for entry in self._by_first.get(token, ()):
                n = len(entry.tokens)
                if n == 1 or tuple(tokens[i : i + n]) == entry.tokens:
                    found.add(entry.key)
        return found


class SemanticIndex:
    """The subscriptions' queries as unit vectors: one matrix row per subscription."""

    def __init__(
        self,
        entries: Sequence[tuple[str, str]],
        matrix: npt.ArrayLike,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        """``entries``: (subscription id, query) in row order; ``matrix``: their embeddings;
        ``thresholds``: each row's query_threshold (None: every score is a hit)."""
        rows = np.asarray(matrix, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(entries):
            raise SemanticIndexError(
                f"the query matrix has shape {rows.shape}, expected ({len(entries)}, dim): "
                "one embedding row per (subscription id, query) entry"
            )
        if thresholds is not None and len(thresholds) != len(entries):
            raise SemanticIndexError(
                f"{len(thresholds)} thresholds for {len(entries)} queries: pass one per entry"
            )
        # float64, as the matcher compares a Python float score with a Python float threshold
        self._thresholds = np.asarray(
            [-np.inf] * len(entries) if thresholds is None else thresholds, dtype=np.float64
        )
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        self._matrix: npt.NDArray[np.float32] = (rows / np.where(norms > 0, norms, 1.0)).astype(
            np.float32
        )
        self._entries = tuple(entries)
        self.ids = tuple(sub_id for sub_id, _ in entries)

    @classmethod
    def build(
        cls, subscriptions: Iterable[Subscription], encode: Callable[[list[str]], np.ndarray]
    ) -> SemanticIndex:
        """Embed the queries of the enabled ``subscriptions`` (each distinct text once)."""
        rows = sorted(
            (sub.id, sub.filter.query, sub.filter.query_threshold)
            for sub in subscriptions
            if sub.enabled and sub.filter.query is not None
        )
        entries = [(sub_id, query) for sub_id, query, _ in rows]
        thresholds = [threshold for _, _, threshold in rows]
        texts = sorted({query for _, query in entries})
        if not texts:
            return cls([], np.zeros((0, 0), dtype=np.float32))
        vectors = np.asarray(encode(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise SemanticIndexError(
                f"encode returned shape {vectors.shape} for {len(texts)} queries: it must "
                "return one row per text"
            )
        row = {text: i for i, text in enumerate(texts)}
        return cls(entries, vectors[[row[query] for _, query in entries]], thresholds)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """The (subscription id, query) pairs: rebuild the index when this changes."""
        return self._entries

    @property
    def matrix(self) -> npt.NDArray[np.float32]:
        """The unit query vectors, shape (queries, dim)."""
        return self._matrix

    def scores(self, centroids: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Cosine of each story centroid (a row) to each query: shape (stories, queries)."""
        stories = np.asarray(centroids, dtype=np.float32)
        if stories.ndim == 1:
            stories = stories[np.newaxis, :]
        if not self.ids:
            return np.zeros((stories.shape[0], 0), dtype=np.float32)
        if stories.ndim != 2 or stories.shape[1] != self._matrix.shape[1]:
            raise SemanticIndexError(
                f"story vectors have shape {stories.shape}, the queries dimension "
                f"{self._matrix.shape[1]}: embed both with the same model"
            )
        norms = np.linalg.norm(stories, axis=1, keepdims=True)
        unit = stories / np.where(norms > 0, norms, 1.0)
        scores: npt.NDArray[np.float32] = (unit @ self._matrix.T).astype(np.float32)
        return scores

    def score_maps(self, centroids: npt.ArrayLike) -> list[dict[str, float]]:
        """:meth:`scores` as one {subscription id: score} mapping per story."""
        return [
            dict(zip(self.ids, (float(x) for x in row), strict=True))
            for row in self.scores(centroids)
        ]

    def hits(self, centroids: npt.ArrayLike) -> list[dict[str, float]]:
        """Per story, {subscription id: score} of the queries scored at or above their
        threshold: what :meth:`Matcher.observe` needs (a lower score never matches), without
        a Python object per query per story."""
        scores = self.scores(centroids)
        found: list[dict[str, float]] = []
        for row in scores:
            columns = np.flatnonzero(row >= self._thresholds)
            found.append({self.ids[j]: float(row[j]) for j in columns})
        return found


class _Assignment(Protocol):
    """The fields of a story assignment (``Assignment`` or a ``StoryEvent``) used here."""

    @property
    def story_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def story_size(self) -> int: ...
    @property
    def source_count(self) -> int: ...
    @property
    def headline(self) -> str: ...
    @property
    def keywords(self) -> Sequence[str] | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def event_time(self) -> float: ...
    @property
    def decision(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StoryUpdate:
    """What one story event tells the matcher: the new article and the story after it."""

    story_id: str
    title: str
    text: str
    source: str
    size: int
    source_count: int
    headline: str
    keywords: tuple[str, ...]
    url: str | None
    event_time: float
    decision: str  # "new", "joined" or "duplicate"
    emerging: bool  # the burst rule fired for this story on this event or before

    @classmethod
    def from_assignment(
        cls, event: _Assignment, *, text: str = "", emerging: bool = False
    ) -> StoryUpdate:
        """From an ``Assignment`` or ``StoryEvent`` (which carry the title, not the text)."""
        return cls(
            story_id=event.story_id,
            title=event.title,
            text=text,
            source=event.source,
            size=event.story_size,
            source_count=event.source_count,
            headline=event.headline,
            keywords=tuple(event.keywords or ()),
            url=event.url,
            event_time=event.event_time,
            decision=event.decision,
            emerging=emerging,
        )


@dataclass
class FiredTriggers:
    """What one subscription already fired for one story."""

    new_story: bool = False
    emerging: bool = False
    growth_step: int = 0  # the last growth step fired (0: none)


@dataclass
class StoryMatchState:
    """Per-story memory of the matcher; bounded by the subscriptions, not by the text."""

    phrases: set[str] = field(default_factory=set)  # subscribed phrase keys seen so far
    sources: dict[str, str] = field(default_factory=dict)  # casefolded name -> name
    size: int = 0  # articles
    source_count: int = 0  # distinct sources, as the engine counts them (not capped)
    emerging: bool = False
    fired: dict[str, FiredTriggers] = field(default_factory=dict)  # by subscription id

    def add_source(self, source: str) -> None:
        """Remember a source, up to :data:`MAX_STORY_SOURCES` distinct ones."""
        folded = source.casefold()
        if folded not in self.sources and len(self.sources) < MAX_STORY_SOURCES:
            self.sources[folded] = source

    def absorb(self, other: StoryMatchState) -> None:
        """Fold a story merged into this one: what either matched, and what each
        subscription fired for either (so a merge fires nothing again)."""
        self.phrases |= other.phrases
        for source in other.sources.values():
            self.add_source(source)
        self.size = max(self.size, other.size)
        self.source_count = max(self.source_count, other.source_count)
        self.emerging = self.emerging or other.emerging
        for sub_id, theirs in other.fired.items():
            mine = self.fired.setdefault(sub_id, FiredTriggers())
            mine.new_story = mine.new_story or theirs.new_story
            mine.emerging = mine.emerging or theirs.emerging
            mine.growth_step = max(mine.growth_step, theirs.growth_step)

    def to_record(self) -> dict[str, Any]:
        return {
            "phrases": sorted(self.phrases),
            "sources": list(self.sources.values()),
            "size": self.size,
            "source_count": self.source_count,
            "emerging": self.emerging,
            "fired": {
                sub_id: [f.new_story, f.emerging, f.growth_step]
                for sub_id, f in sorted(self.fired.items())
            },
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StoryMatchState:
        state = cls(
            phrases={str(p) for p in record["phrases"]},
            size=int(record["size"]),
            source_count=int(record["source_count"]),
            emerging=bool(record["emerging"]),
            fired={
                str(sub_id): FiredTriggers(bool(new), bool(emerging), int(step))
                for sub_id, (new, emerging, step) in record["fired"].items()
            },
        )
        for source in record["sources"]:
            state.add_source(str(source))
        return state


@dataclass(frozen=True, slots=True)
class Match:
    """One alert to send: a subscription's trigger firing for a story."""

    subscription_id: str
    story_id: str
    trigger: str  # "new_story", "emerging" or "growth"
    step: int | None  # the growth step crossed (None for the other triggers)
    why: dict[str, Any]  # {"keywords": [...], "semantic_score": float | None, "sources": ...}

    @property
    def dedup_key(self) -> str:
        """Stable across retries and restarts: the receiver's idempotency key."""
        base = f"{self.subscription_id}:{self.story_id}:{self.trigger}"
        return base if self.step is None else f"{base}:{self.step}"


@dataclass(frozen=True, slots=True)
class _Rule:
    """A subscription's filter, normalized once for matching."""

    sub: Subscription
    any_keys: frozenset[str]
    all_keys: frozenset[str]
    none_keys: frozenset[str]
    shown: tuple[tuple[str, str], ...]  # (key, phrase as written) of the any + all lists
    allow: frozenset[str]
    deny: frozenset[str]

    @classmethod
    def of(cls, sub: Subscription) -> _Rule:
        words = sub.filter.keywords
        return cls(
            sub=sub,
            any_keys=frozenset(phrase_key(p) for p in words.any),
            all_keys=frozenset(phrase_key(p) for p in words.all),
            none_keys=frozenset(phrase_key(p) for p in words.none),
            shown=tuple((phrase_key(p), p) for p in words.any + words.all),
            allow=frozenset(s.casefold() for s in sub.filter.sources.allow),
            deny=frozenset(s.casefold() for s in sub.filter.sources.deny),
        )

    def idle(self, fired: FiredTriggers | None, state: StoryMatchState) -> bool:
        """Nothing of the subscription can fire for this story now: each trigger fired all
        it can, or waits (``emerging`` for the story to emerge, ``growth`` for its next
        step). Its filter need not be evaluated: a match would fire nothing and change no
        state (a subscription that matched once has its ``fired`` entry already)."""
        if fired is None:
            return False
        f = self.sub.filter
        return (
            ("new_story" not in f.triggers or fired.new_story)
            and ("emerging" not in f.triggers or fired.emerging or not state.emerging)
            and (
                "growth" not in f.triggers
                or not any(fired.growth_step < step <= state.size for step in f.growth_steps)
            )
        )

    def why(
        self, state: StoryMatchState, sources: Mapping[str, str], semantic: Mapping[str, float]
    ) -> dict[str, Any] | None:
        """The evidence if the story matches the filter now, else None."""
        f = self.sub.filter
        if not (
            self._keywords_hold(state.phrases)
            and state.size >= f.min_size
            and state.source_count >= f.min_sources
        ):
            return None
        score = semantic.get(self.sub.id) if f.query is not None else None
        if f.query is not None and (score is None or score < f.query_threshold):
            return None
        allowed = (
            sorted(name for folded, name in sources.items() if folded in self.allow)
            if self.allow
            else []  # not a walk over a wire story's thousand sources per matching rule
        )
        if (self.allow and not allowed) or (self.deny and self.deny.issuperset(sources)):
            return None
        return {
            "keywords": sorted({p for key, p in self.shown if key in state.phrases}),
            "semantic_score": score,
            "sources": allowed if self.allow else None,
        }

    def _keywords_hold(self, seen: set[str]) -> bool:
        return (
            (not self.any_keys or not self.any_keys.isdisjoint(seen))
            and self.all_keys <= seen
            and self.none_keys.isdisjoint(seen)
        )


class Matcher:
    """Evaluates the enabled subscriptions against each story event."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        keywords: KeywordIndex | None = None,
        semantic: SemanticIndex | None = None,
    ) -> None:
        """``keywords`` defaults to the index of ``subscriptions``; ``semantic`` is kept for
        the caller (:meth:`observe` takes the scores it computed)."""
        enabled = [sub for sub in subscriptions if sub.enabled]
        self._rules = tuple(_Rule.of(sub) for sub in enabled)
        self.subscriptions = tuple(enabled)
        self.keywords = keywords if keywords is not None else KeywordIndex.build(enabled)
        self.semantic = semantic
        # The candidate indexes, by rule position (evaluated in this order, as listed):
        # phrase key -> rules with it in ``any`` or ``all``; subscription id -> its rules
        # with a query; and the rules with neither, which any event may match.
        by_phrase: dict[str, list[int]] = {}
        by_query: dict[str, list[int]] = {}
        unindexed: list[int] = []
        for position, rule in enumerate(self._rules):
            for key in rule.any_keys | rule.all_keys:
                by_phrase.setdefault(key, []).append(position)
            if rule.sub.filter.query is not None:
                by_query.setdefault(rule.sub.id, []).append(position)
            elif not (rule.any_keys or rule.all_keys):
                unindexed.append(position)
        self._by_phrase = {key: tuple(rules) for key, rules in by_phrase.items()}
        self._by_query = {sub_id: tuple(rules) for sub_id, rules in by_query.items()}
        self._unindexed = tuple(unindexed)

    def _candidates(self, state: StoryMatchState, semantic: Mapping[str, float]) -> list[int]:
        """The positions of the rules that can match the story now, in rule order.

        A rule with ``any`` or ``all`` phrases holds only once the story contains one of
        them (``state.phrases`` accumulates over the story, so a rule that matched before,
        or that waited for min_size, is still found for its later triggers); a rule with a
        query only while its score reaches the threshold; the rest are always candidates.
        """
        found = set(self._unindexed)
        for key in state.phrases:
            found.update(self._by_phrase.get(key, ()))
        for sub_id, score in semantic.items():
            for position in self._by_query.get(sub_id, ()):
                if score >= self._rules[position].sub.filter.query_threshold:
                    found.add(position)
        return sorted(found)

    def observe(
        self, story: StoryUpdate, state: StoryMatchState, semantic: Mapping[str, float]
    ) -> list[Match]:
        """Update ``state`` with one story event; return the alerts to send now.

        ``semantic``: {subscription id: cosine of the story's current centroid to its query}
        (a subscription with a query and no score does not match): all scores, or only those
        at or above their threshold (:meth:`SemanticIndex.hits`, the fast way). A trigger fires only
        while the story matches: ``new_story`` the first time, ``emerging`` once the story
        is emerging, ``growth`` for the largest step of ``growth_steps`` that the size has
        reached and that has not fired yet (one alert even when two steps are crossed).
        """
        state.phrases |= self.keywords.find(phrase_tokens(story.title))
        if story.text:
            state.phrases |= self.keywords.find(phrase_tokens(story.text))
        state.add_source(story.source)
        state.size = max(state.size, story.size)
        state.source_count = max(state.source_count, story.source_count)
        state.emerging = state.emerging or story.emerging
        # The event's own source counts even when the state is at its cap.
        sources = state.sources
        if story.source.casefold() not in sources:
            sources = {**sources, story.source.casefold(): story.source}

        matches: list[Match] = []
        for position in self._candidates(state, semantic):
            rule = self._rules[position]
            sub_id = rule.sub.id
            if rule.idle(state.fired.get(sub_id), state):
                continue
            why = rule.why(state, sources, semantic)
            if why is None:
                continue
            fired = state.fired.setdefault(sub_id, FiredTriggers())
            for trigger, step in _due(rule.sub, fired, state):
                matches.append(Match(sub_id, story.story_id, trigger, step, why))
        return matches


def _due(
    sub: Subscription, fired: FiredTriggers, state: StoryMatchState
) -> list[tuple[str, int | None]]:
    """The triggers of a matching subscription to fire now; marks them fired."""
    triggers = sub.filter.triggers
    due: list[tuple[str, int | None]] = []
    if "new_story" in triggers and not fired.new_story:
        fired.new_story = True
        due.append(("new_story", None))
    if "emerging" in triggers and state.emerging and not fired.emerging:
        fired.emerging = True
        due.append(("emerging", None))
    if "growth" in triggers:
        reached = [s for s in sub.filter.growth_steps if fired.growth_step < s <= state.size]
        if reached:
            fired.growth_step = reached[-1]
            due.append(("growth", reached[-1]))
    return due
