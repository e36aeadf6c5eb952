"""The dashboard's read model: every active story, built on each worker from the ``stories``
and ``alerts`` topics, with kept indexes so a page of any sort or filter is served without
sorting every story.

Pure Python, no I/O: :mod:`streams.read_model.follower` feeds it from Kafka; tests and the
benchmark feed it directly. Times are event times (the article's publication time, else its
Kafka time), and the clock is the newest event time applied, as in the engine: "the last
hour" is the hour before the newest article, which is what a replayed stream needs.
"""

from __future__ import annotations

import heapq
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.contracts.records import MERGED
from streams.cursors import Key, decode_cursor, encode_cursor
from streams.engine.emerging import EMERGING
from streams.read_model.events import EventFeed
from streams.read_model.index import SORTS, StoryIndexes
from streams.read_model.story import ArticleEntry, StoryEntry, words_of
from streams.stages.merges import merge_pair, resolve

__all__ = ["StoryPage", "StoryQuery", "StoryReadModel"]

HOUR_S, DAY_S = 3600.0, 86_400.0
# Why 2,000: a filter that leaves at most this many candidate stories (a rare word, a
# source) sorts them (~1 ms); a broader one walks the sorted list and tests each story,
# finding a page within about limit x (stories / candidates) <= limit x 50 steps at 100k.
_CANDIDATE_SORT_MAX = 2000
# Why 10,000: the stories one request may examine while walking the sorted list (1.5-3 us
# each: 15-30 ms of the event loop at most, measured at 100k stories, which every stream
# and agent shares). A filter
# whose matches are spread thinner than that answers the matches found so far with
# ``partial`` set and a ``next_cursor`` that walks on from where this request stopped
# (bench/story_search.py, docs/BENCHMARKS.md).
_SCAN_MAX = 10_000
# Why 16: bars of the sparkline in the story list (the story view draws the full timeline).
SPARK_BARS = 16
# Why 500: recent public alerts kept for the alerts view; older ones: GET /api/alerts.
_RECENT_ALERTS = 500
# Why 1,000: alerts read before their story (the two topics are read side by side), kept
# until the story arrives; an alert of a story that expired long ago is dropped.
_PENDING_ALERTS = 1000
# Why 5: sources named in a story list row (the story view lists them all).
_FIRST_SOURCES = 5
# Why 100: near-duplicate groups listed in a story view (the biggest first).
_GROUPS_SHOWN = 100

_REQUIRED = ("article_id", "story_id", "event_time", "decision", "story_size", "headline")


@dataclass(frozen=True)
class StoryQuery:
    """What ``GET /api/stories`` asks for (validated by the view)."""

    sort: str = "growth"
    words: tuple[str, ...] = ()
    source: str | None = None
    min_size: int = 1
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class StoryPage:
    stories: list[dict[str, Any]]
    next_cursor: str | None
    # The walk stopped at _SCAN_MAX stories examined: more matches may follow next_cursor.
    partial: bool = False


class StoryReadModel:
    """Active stories by id, kept in sorted indexes; expired like the engine's (quiet for
    longer than the story window, by the newest event time)."""

    def __init__(
        self,
        *,
        window_s: float,
        articles_per_story: int,
        feed: EventFeed | None = None,
        on_change: Callable[[str, int], None] | None = None,
    ) -> None:
        self.window_s = window_s
        self.articles_per_story = articles_per_story
        self.feed = feed or EventFeed()
        self.clock = float("-inf")
        self.live = False  # caught up with the topics: push events from now on
        self._on_change = on_change  # (applied kind, stories held) for metrics
        self._stories: dict[str, StoryEntry] = {}
        self._activity: OrderedDict[str, float] = OrderedDict()  # least recently active first
        self._windows: list[tuple[float, str, int]] = []  # (leaves at, story, 0=hour/1=day)
        self._indexes = StoryIndexes()
        self._alerts: deque[dict[str, Any]] = deque(maxlen=_RECENT_ALERTS)
        self._alert_ids: set[str] = set()
        self._pending: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # absorbed story id -> the active story it was merged into (dropped when that goes)
        self._merged_into: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._stories)

    def get(self, story_id: str) -> StoryEntry | None:
        return self._stories.get(story_id)

    def merged_into(self, story_id: str) -> str | None:
        """The active story ``story_id`` was merged into (None: it was not, or that story
        is no longer active)."""
        return self._merged_into.get(story_id)

    def _resolve(self, story_id: str) -> str:
        return resolve(story_id, self._merged_into.get)

    # --- applying the topics -----------------------------------------------------------

    def apply_story_event(self, event: Mapping[str, Any]) -> bool:
        """Apply one ``stories`` record (a decoded StoryEvent). False when it is malformed or
        a replay (at-least-once delivery) of an article the story already holds."""
        if not all(event.get(name) is not None for name in _REQUIRED):
            self._changed("skipped")
            return False
        if event["decision"] == MERGED:
            return self._apply_merge(event)
        # A late (replayed) event of a merged story counts in the story it is part of now.
        story_id, article_id = self._resolve(str(event["story_id"])), str(event["article_id"])
        when = float(event["event_time"])
        entry = self._stories.get(story_id)
        if entry is not None and article_id in entry.recent_ids:
            self._changed("replayed")
            return False
        self._advance(when)
        created = entry is None
        if entry is None:
            entry = self._stories[story_id] = StoryEntry(story_id)
        article = self._article(entry, event, when)
        self._update(entry, event, article, when)
        if created:
            for alert in self._pending.pop(story_id, []):
                entry.attach(alert)
        self._applied(
            entry,
            "story",
            "story" if created else "join",
            lambda: {"article": article.view()},
            active=article.decision != "duplicate" or created,  # the engine's notion of activity
        )
        return True

    def _apply_merge(self, event: Mapping[str, Any]) -> bool:
        """Fold the absorbed story into the survivor: its articles, sources, counts and
        alerts; the absorbed id answers as the survivor from now on. False for a replayed
        merge (the absorbed id already lives on as the survivor) or one without its id."""
        if not event.get("absorbed_id"):
            self._changed("skipped")
            return False
        pair = merge_pair(str(event["story_id"]), str(event["absorbed_id"]), self._merged_into.get)
        if pair is None:
            self._changed("replayed")
            return False
        survivor_id, absorbed_id = pair
        when = float(event["event_time"])
        self._advance(when)
        entry = self._stories.get(survivor_id)
        if entry is None:
            entry = self._stories[survivor_id] = StoryEntry(survivor_id)
        absorbed = self._stories.pop(absorbed_id, None)
        if absorbed is not None:
            self._indexes.remove(absorbed)
            self._activity.pop(absorbed_id, None)
            entry.absorb(absorbed, self.articles_per_story, _FIRST_SOURCES)
            for source in absorbed.sources:
                self._indexes.add_source(entry, source)
        merge = dict(event.get("merge") or {})
        entry.merged_from.append(
            {
                "story_id": absorbed_id,
                "headline": absorbed.headline if absorbed is not None else None,
                "article_id": str(event["article_id"]),
                "time": when,
                **merge,
            }
        )
        for gone in entry.merged_from:
            self._merged_into[gone["story_id"]] = survivor_id
        for alert in self._pending.pop(absorbed_id, []):
            entry.attach(alert)
        _summarise(entry, event, when)
        entry.spark = None
        self._indexes.set_words(entry, words_of(entry.headline, *entry.keywords))
        self._indexes.place(entry)
        self._applied(
            entry, "merge", "merged", lambda: {"absorbed_id": absorbed_id, "merge": merge}
        )
        return True

    def _applied(
        self,
        entry: StoryEntry,
        kind: str,
        name: str,
        details: Callable[[], dict[str, Any]],
        *,
        active: bool = True,
    ) -> None:
        """After a ``stories`` event changed ``entry``: its activity, expiry, the metrics
        (``kind``) and, once live, the feed event ``name`` (the story and ``details()``)."""
        if active:
            self._activity[entry.story_id] = self.clock
            self._activity.move_to_end(entry.story_id)
        self._expire()
        self._changed(kind)
        if self.live and entry.story_id in self._stories:
            self.feed.publish(name, {"story": entry.summary(SPARK_BARS), **details()})

    def apply_alert(self, alert: Mapping[str, Any]) -> bool:
        """Apply one ``alerts`` record: the built-in rule's public alerts only (a
        subscription's alerts belong to their owner: ``GET /api/alerts``)."""
        data = alert.get("data")
        if alert.get("type") != EMERGING or not isinstance(data, dict) or not alert.get("id"):
            return False
        if str(alert["id"]) in self._alert_ids:  # read again (a replay)
            return False
        alert_id = str(alert["id"])
        story_id = self._resolve(str(data.get("story_id", alert.get("subject", ""))))
        view: dict[str, Any] = {
            "id": alert_id,
            "type": str(alert["type"]),
            "time": alert.get("time"),
            "rule": data.get("rule"),
            "story_id": story_id,
            "headline": data.get("headline"),
            "size": data.get("size"),
            "source_count": data.get("source_count"),
            "sources": data.get("sources"),
        }
        if len(self._alerts) == self._alerts.maxlen:
            self._alert_ids.discard(self._alerts[0]["id"])
        self._alerts.append(view)
        self._alert_ids.add(alert_id)
        entry = self._stories.get(story_id)
        if entry is not None:
            entry.attach(view)
        else:
            self._pending.setdefault(story_id, []).append(view)
            while len(self._pending) > _PENDING_ALERTS:
                self._pending.popitem(last=False)
        self._changed("alert")
        if self.live:
            self.feed.publish("alert", view)
        return True

    def _article(self, entry: StoryEntry, event: Mapping[str, Any], when: float) -> ArticleEntry:
        return ArticleEntry(
            n=entry.articles_seen,
            article_id=str(event["article_id"]),
            title=str(event.get("title") or ""),
            source=sys.intern(str(event.get("source") or "unknown")),  # one copy per source
            url=event.get("url"),
            event_time=when,
            decision=str(event["decision"]),
            dup_group_id=str(event.get("dup_group_id") or ""),
            similarity=float(event.get("similarity") or 0.0),
            lexical_similarity=float(event.get("lexical_similarity") or 0.0),
            entity_share=event.get("entity_share"),
            shared_terms=tuple(event.get("shared_terms") or ()),
            rejected_story_id=event.get("rejected_story_id"),
            rejected_score=event.get("rejected_score"),
            rejected_entity_share=event.get("rejected_entity_share"),
        )

    def _update(
        self, entry: StoryEntry, event: Mapping[str, Any], article: ArticleEntry, when: float
    ) -> None:
        _summarise(entry, event, when)
        entry.articles_seen += 1
        joined = entry.sources.get(article.source)
        if joined is None:
            entry.sources[article.source] = [when, 1]
            self._indexes.add_source(entry, article.source)
            if len(entry.first_sources) < _FIRST_SOURCES:
                entry.first_sources.append(article.source)
        else:
            joined[0], joined[1] = min(joined[0], when), joined[1] + 1
        group = entry.groups.get(article.dup_group_id)
        if group is None:
            entry.groups[article.dup_group_id] = [1, article.title]
        else:
            group[0] += 1
        entry.recent.append(article)
        entry.recent_ids.add(article.article_id)
        if len(entry.recent) > self.articles_per_story:
            entry.recent_ids.discard(entry.recent.popleft().article_id)
        if article.decision == "new" and entry.started_by is None:
            entry.started_by = article
        entry.counts.add(when)
        entry.spark = None
        for window, width in ((0, HOUR_S), (1, DAY_S)):
            if when > self.clock - width:
                if window == 0:
                    entry.last_hour += 1
                else:
                    entry.last_day += 1
                heapq.heappush(self._windows, (when + width, entry.story_id, window))
        self._indexes.set_words(entry, words_of(entry.headline, *entry.keywords))
        self._indexes.place(entry)

    def _advance(self, when: float) -> None:
        """Move the clock; articles leaving the last hour/day stop counting for growth."""
        if when <= self.clock:
            return
        self.clock = when
        while self._windows and self._windows[0][0] <= self.clock:
            _, story_id, window = heapq.heappop(self._windows)
            entry = self._stories.get(self._resolve(story_id))
            if entry is None:
                continue
            if window == 0:
                entry.last_hour -= 1
            else:
                entry.last_day -= 1
            self._indexes.place(entry)

    def _expire(self) -> None:
        cutoff = self.clock - self.window_s
        while self._activity:
            story_id, last_active = next(iter(self._activity.items()))
            if last_active >= cutoff:
                break
            del self._activity[story_id]
            entry = self._stories.pop(story_id)
            self._indexes.remove(entry)
            for gone in entry.merged_from:
                self._merged_into.pop(gone["story_id"], None)

    def _changed(self, kind: str) -> None:
        if self._on_change is not None:
            self._on_change(kind, len(self._stories))

    # --- reading -------------------------------------------------------------------------

    def query(self, query: StoryQuery) -> StoryPage:
        """One page of stories in ``query.sort`` order that match every filter.
        Raises :class:`~streams.cursors.BadCursor` for a cursor not made here."""
        key_of = SORTS[query.sort]
        ordered = self._indexes.sorted[query.sort]
        after: Key | None = None
        if query.cursor:
            after = decode_cursor(query.cursor, query.sort, key_of(StoryEntry("")))
        candidates, allowed = self._candidates(query)
        keep = self._matcher(query, allowed)
        found: list[StoryEntry] = []
        if candidates is not None:
            keys = [
                e.keys[query.sort]
                for e in (self._stories[i] for i in candidates)
                if keep(e) and (after is None or e.keys[query.sort] > after)
            ]
            found = [self._stories[k[-1]] for k in heapq.nsmallest(query.limit + 1, keys)]
        else:
            start = 0 if after is None else ordered.bisect_right(after)
            for examined, key in enumerate(ordered.islice(start), start=1):
                entry = self._stories[key[-1]]
                if keep(entry):
                    found.append(entry)
                    if len(found) > query.limit:
                        break
                if examined >= _SCAN_MAX:
                    # Bounded work: answer what was found; the cursor walks on from here.
                    shown = [e.summary(SPARK_BARS) for e in found]
                    return StoryPage(shown, encode_cursor(query.sort, key_of(entry)), True)
        more = len(found) > query.limit
        page = found[: query.limit]
        cursor = encode_cursor(query.sort, key_of(page[-1])) if more and page else None
        return StoryPage([e.summary(SPARK_BARS) for e in page], cursor)

    def _candidates(self, query: StoryQuery) -> tuple[set[str] | None, list[set[str]]]:
        """(the ids to sort, when the filters leave few enough; the id sets a story must be
        in: one per word and source). Sets of at most _SCAN_MAX ids are intersected first
        (C set operations, smallest first: never more work than a bounded walk); larger
        ones are tested per story during the walk, which _SCAN_MAX bounds."""
        sets: list[set[str]] = [self._indexes.by_word.get(w, set()) for w in query.words]
        if query.source is not None:
            sets.append(self._indexes.by_source.get(query.source.lower(), set()))
        sets.sort(key=len)
        if len(sets) > 1 and len(sets[0]) <= _SCAN_MAX:
            sets = [sets[0].intersection(*sets[1:])]
        if query.min_size > 1:
            by_size = self._indexes.sorted["size"]
            prefix = by_size.bisect_left((-query.min_size + 1,))
            if prefix <= _CANDIDATE_SORT_MAX:
                sized = {k[-1] for k in by_size.islice(0, prefix)}
                return sized.intersection(*sets), sets
        if len(sets) == 1 and len(sets[0]) <= _CANDIDATE_SORT_MAX:
            return sets[0], sets
        return None, sets

    def _matcher(self, query: StoryQuery, allowed: list[set[str]]) -> Callable[[StoryEntry], bool]:
        """Whether a story passes every filter (``allowed``: the id sets it must be in)."""

        def keep(entry: StoryEntry) -> bool:
            return entry.size >= query.min_size and all(entry.story_id in ids for ids in allowed)

        return keep

    def detail(self, story_id: str, articles: int) -> dict[str, Any] | None:
        """A story with its newest ``articles``, groups, the why, alerts and sources; the
        stories merged into it (``merged_from``). A merged story's id answers the story it
        was merged into, with ``merged_into`` naming that one."""
        entry = self._stories.get(self._resolve(story_id))
        if entry is None:
            return None
        page, cursor = self.articles(entry.story_id, None, articles) or ([], None)
        groups = sorted(entry.groups.items(), key=lambda g: (-g[1][0], g[0]))
        redirect = {} if entry.story_id == story_id else {"merged_into": entry.story_id}
        return {
            **entry.summary(SPARK_BARS),
            **redirect,
            "merged_from": list(entry.merged_from),
            "sources": [
                {"source": s, "first_seen": t, "articles": int(n)}
                for s, (t, n) in sorted(entry.sources.items(), key=lambda x: (x[1][0], x[0]))
            ],
            "articles_seen": entry.articles_seen,
            "articles_kept": len(entry.recent),
            "started_by": entry.started_by.view() if entry.started_by else None,
            "groups": [
                {"dup_group_id": gid, "articles": int(n), "title": title}
                for gid, (n, title) in groups[:_GROUPS_SHOWN]
            ],
            "group_count": len(entry.groups),
            "alerts": list(entry.alerts),
            "articles": page,
            "next_cursor": cursor,
        }

    def articles(
        self, story_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None] | None:
        """The story's kept articles, newest first, ``limit`` a page; None: no such story."""
        entry = self._stories.get(self._resolve(story_id))
        if entry is None:
            return None
        before = float("inf")
        if cursor:
            before = decode_cursor(cursor, "articles", (0,))[0]
        newer_first = [a for a in reversed(entry.recent) if a.n < before]
        page = newer_first[:limit]
        more = len(newer_first) > limit
        return [a.view() for a in page], encode_cursor("articles", (page[-1].n,)) if more else None

    def timeline(self, story_id: str) -> dict[str, Any] | None:
        """Articles per time bucket (the width chosen from the story's span), sources in the
        order they joined, alerts fired."""
        entry = self._stories.get(self._resolve(story_id))
        if entry is None:
            return None
        width, bars = entry.counts.bars(entry.first_seen, entry.last_seen)
        return {
            "story_id": entry.story_id,
            "first_seen": entry.first_seen,
            "last_seen": entry.last_seen,
            "bucket_seconds": width,
            "buckets": [{"start": start, "articles": n} for start, n in bars],
            "sources": [
                {"source": s, "first_seen": t, "articles": int(n)}
                for s, (t, n) in sorted(entry.sources.items(), key=lambda x: (x[1][0], x[0]))
            ],
            "alerts": list(entry.alerts),
        }

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return list(self._alerts)[-limit:][::-1]


def _summarise(entry: StoryEntry, event: Mapping[str, Any], when: float) -> None:
    """Take the story's summary from a ``stories`` event (an assignment or a merge)."""
    entry.headline = str(event["headline"])
    entry.keywords = tuple(event.get("keywords") or entry.keywords)
    # max: a replayed older event never shrinks what a later one said
    entry.size = max(entry.size, int(event["story_size"]))
    entry.source_count = max(entry.source_count, int(event.get("source_count") or 0))
    first = float(event.get("first_seen") or when)
    entry.first_seen = first if entry.articles_seen == 0 else min(entry.first_seen, first)
    entry.last_seen = max(entry.last_seen, float(event.get("last_seen") or when))
