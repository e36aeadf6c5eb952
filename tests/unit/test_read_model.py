"""The dashboard's read model, fed directly (pure logic: no Kafka, no HTTP)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from streams.engine.emerging import EMERGING
from streams.read_model import SORTS, BadCursor, EventFeed, StoryQuery, StoryReadModel
from streams.read_model import model as model_module
from streams.read_model.timeline import BUCKET_LADDER, TimeCounts, bucket_for_span

HOUR = 3600.0


def event(
    article: str,
    story: str,
    t: float,
    *,
    decision: str = "joined",
    size: int = 1,
    source: str = "Wire",
    headline: str = "Flood in the valley",
    keywords: tuple[str, ...] = ("flood", "valley"),
    group: str | None = None,
) -> dict[str, Any]:
    return {
        "article_id": article,
        "story_id": story,
        "event_time": t,
        "decision": decision,
        "story_size": size,
        "source_count": 1,
        "first_seen": t,
        "last_seen": t,
        "headline": headline,
        "keywords": list(keywords),
        "title": f"title of {article}",
        "source": source,
        "url": f"https://example.org/{article}",
        "dup_group_id": group or f"dg-{article}",
        "similarity": 0.61,
        "lexical_similarity": 0.2,
        "entity_share": None,
        "shared_terms": ["flood"],
    }


def model(**kwargs: Any) -> StoryReadModel:
    return StoryReadModel(
        window_s=kwargs.pop("window_s", 72 * HOUR),
        articles_per_story=kwargs.pop("articles_per_story", 200),
        **kwargs,
    )


def ids(page: Any) -> list[str]:
    return [s["story_id"] for s in page.stories]


def test_growth_ranks_the_last_hour_first_and_decays_as_the_clock_moves() -> None:
    m = model()
    for n in range(5):  # an old big story: 5 articles two hours ago
        m.apply_story_event(event(f"old{n}", "big", 0.0 + n, size=n + 1))
    m.apply_story_event(event("new0", "fresh", 2 * HOUR, decision="new"))
    assert ids(m.query(StoryQuery(sort="growth"))) == ["fresh", "big"]
    assert ids(m.query(StoryQuery(sort="size"))) == ["big", "fresh"]
    big = m.query(StoryQuery(sort="size")).stories[0]
    assert (big["articles_last_hour"], big["articles_last_day"]) == (0, 5)
    # A day later the fresh story's article leaves both windows too.
    m.apply_story_event(event("later", "other", 2 * HOUR + 25 * HOUR, decision="new"))
    fresh = next(s for s in m.query(StoryQuery(limit=10)).stories if s["story_id"] == "fresh")
    assert (fresh["articles_last_hour"], fresh["articles_last_day"]) == (0, 0)
    assert ids(m.query(StoryQuery(sort="growth")))[0] == "other"


def test_stories_quiet_past_the_window_expire_with_their_index_entries() -> None:
    m = model(window_s=10 * HOUR)
    m.apply_story_event(event("a", "s1", 0.0, decision="new", headline="Quiet river"))
    m.apply_story_event(event("b", "s2", 5 * HOUR, decision="new"))
    assert len(m) == 2
    m.apply_story_event(event("c", "s2", 11 * HOUR))
    assert m.get("s1") is None and len(m) == 1
    assert m.query(StoryQuery(words=("quiet",))).stories == []
    assert "quiet" not in m._indexes.by_word
    assert all(len(ordered) == 1 for ordered in m._indexes.sorted.values())


def test_a_duplicate_event_does_not_keep_a_story_alive_like_the_engine() -> None:
    m = model(window_s=10 * HOUR)
    m.apply_story_event(event("a", "s1", 0.0, decision="new"))
    m.apply_story_event(event("b", "s2", 9 * HOUR, decision="new"))
    m.apply_story_event(event("a-copy", "s1", 9.5 * HOUR, decision="duplicate"))
    m.apply_story_event(event("c", "s2", 10.5 * HOUR))
    assert m.get("s1") is None


def test_a_replayed_event_counts_once() -> None:
    m = model()
    m.apply_story_event(event("a", "s1", 0.0, decision="new"))
    m.apply_story_event(event("b", "s1", 1.0, size=2))
    assert m.apply_story_event(event("b", "s1", 1.0, size=2)) is False
    story = m.detail("s1", 50)
    assert story is not None and story["articles_seen"] == 2 and story["size"] == 2


def test_malformed_events_are_skipped() -> None:
    m = model()
    assert m.apply_story_event({"story_id": "s1"}) is False
    assert len(m) == 0


def test_articles_kept_per_story_are_capped_but_counts_cover_all() -> None:
    m = model(articles_per_story=3)
    for n in range(10):
        decision = "new" if n == 0 else "joined"
        m.apply_story_event(event(f"a{n}", "s1", float(n * 60), size=n + 1, decision=decision))
    story = m.detail("s1", 50)
    assert story is not None
    assert [a["article_id"] for a in story["articles"]] == ["a9", "a8", "a7"]
    assert story["articles_seen"] == 10 and story["articles_kept"] == 3
    assert story["started_by"]["article_id"] == "a0"  # kept apart from the cap
    timeline = m.timeline("s1")
    assert timeline is not None and sum(b["articles"] for b in timeline["buckets"]) == 10


def test_the_why_and_the_closest_story_not_joined() -> None:
    m = model()
    first = event("a", "s1", 0.0, decision="new")
    first.update(rejected_story_id="s0", rejected_score=0.31, rejected_entity_share=0.05)
    m.apply_story_event(first)
    m.apply_story_event(event("b", "s1", 60.0, size=2, group="dg-a"))
    story = m.detail("s1", 50)
    assert story is not None
    closest = story["started_by"]["why"]["closest_story_not_joined"]
    assert closest == {"story_id": "s0", "score": 0.31, "entity_share": 0.05}
    joined = story["articles"][0]["why"]
    assert joined["similarity"] == 0.61 and joined["shared_terms"] == ["flood"]
    assert story["groups"] == [{"dup_group_id": "dg-a", "articles": 2, "title": "title of a"}]


def _random_model(n: int, seed: int = 7) -> StoryReadModel:
    rng = random.Random(seed)
    m = model()
    words = ["flood", "fire", "vote", "storm", "match", "bank", "strike"]
    sources = ["Wire", "Herald", "Times", "Post"]
    for k in range(n):
        story = f"s{rng.randrange(n // 2)}"
        head = " ".join(rng.sample(words, 2))
        existing = m.get(story)
        m.apply_story_event(
            event(
                f"a{k}",
                story,
                float(rng.randrange(0, 48 * 3600)),
                size=(existing.size + 1) if existing else 1,
                source=rng.choice(sources),
                headline=existing.headline if existing else head,
                keywords=tuple(head.split()),
            )
        )
    return m


@pytest.mark.parametrize("sort", list(SORTS))
def test_cursor_pages_cover_every_story_once_in_sort_order(sort: str) -> None:
    m = _random_model(600)
    whole = ids(m.query(StoryQuery(sort=sort, limit=1000)))
    assert len(whole) == len(m)
    paged: list[str] = []
    cursor = None
    while True:
        page = m.query(StoryQuery(sort=sort, limit=17, cursor=cursor))
        paged += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert paged == whole
    keys = [m._stories[i].keys[sort] for i in whole]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    "query",
    [
        StoryQuery(words=("flood",)),
        StoryQuery(words=("flood", "vote")),
        StoryQuery(source="herald"),
        StoryQuery(min_size=3, sort="recent"),
        StoryQuery(words=("storm",), source="Times", min_size=2, sort="new"),
    ],
)
def test_filters_give_the_same_pages_sorted_from_candidates_or_walked(
    query: StoryQuery, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = _random_model(600)

    def pages() -> list[str]:
        found, cursor = [], None
        while True:
            page = m.query(StoryQuery(**{**query.__dict__, "limit": 9, "cursor": cursor}))
            found += ids(page)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    monkeypatch.setattr(model_module, "_CANDIDATE_SORT_MAX", 10**9)
    from_candidates = pages()
    monkeypatch.setattr(model_module, "_CANDIDATE_SORT_MAX", 0)
    walked = pages()
    assert from_candidates == walked and walked
    for sid in walked:
        entry = m._stories[sid]
        assert set(query.words) <= entry.words and entry.size >= query.min_size
        if query.source:
            assert query.source.lower() in {s.lower() for s in entry.sources}


@pytest.mark.parametrize(
    "query",
    [
        StoryQuery(words=("flood", "vote")),
        StoryQuery(words=("storm",), source="Times", min_size=2, sort="new"),
        StoryQuery(min_size=2, sort="recent"),
    ],
)
def test_a_walk_stops_at_its_scan_budget_and_the_cursor_walks_on(
    query: StoryQuery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded work per request: a walk examines at most _SCAN_MAX stories and answers
    ``partial`` with a cursor; following the cursors yields exactly the unbounded answer."""
    m = _random_model(600)

    def pages() -> tuple[list[str], int]:
        found, cursor, partial = [], None, 0
        while True:
            page = m.query(StoryQuery(**{**query.__dict__, "limit": 9, "cursor": cursor}))
            found += ids(page)
            partial += page.partial
            if page.next_cursor is None:
                return found, partial
            cursor = page.next_cursor

    monkeypatch.setattr(model_module, "_CANDIDATE_SORT_MAX", 0)  # always walk
    whole, cut = pages()
    assert cut == 0 and whole
    monkeypatch.setattr(model_module, "_SCAN_MAX", 25)
    bounded, cut = pages()
    assert bounded == whole
    assert cut > 0  # some requests stopped at the budget


def test_bad_cursors_are_refused() -> None:
    m = _random_model(100)
    cursor = m.query(StoryQuery(sort="size", limit=1)).next_cursor
    assert cursor
    with pytest.raises(BadCursor, match="keep the same route and sort"):
        m.query(StoryQuery(sort="recent", cursor=cursor))
    for bad in ("garbage!", "W10", "WyJzaXplIiwgWyJ4IiwgMSwgMl1d"):
        with pytest.raises(BadCursor):
            m.query(StoryQuery(sort="size", cursor=bad))


def test_public_alerts_attach_to_their_story_even_when_read_first() -> None:
    m = model()
    alert = {"id": "s1:emerging", "type": EMERGING, "time": "2026-01-01T00:00:00Z"}
    alert["data"] = {"story_id": "s1", "rule": "emerging", "size": 5, "source_count": 3}
    assert m.apply_alert(alert) is True
    assert m.apply_alert(alert) is False  # the same alert read again
    private = {"id": "sub:s1:new_story", "type": "io.storywatch.subscription.new_story"}
    assert m.apply_alert({**private, "data": {"owner": "alice"}}) is False
    m.apply_story_event(event("a", "s1", 0.0, decision="new"))
    timeline = m.timeline("s1")
    assert timeline is not None and [a["id"] for a in timeline["alerts"]] == ["s1:emerging"]
    assert [a["id"] for a in m.recent_alerts(10)] == ["s1:emerging"]


def test_the_feed_pushes_only_once_caught_up_and_resumes_from_its_ring() -> None:
    feed = EventFeed(ring=3)
    m = model(feed=feed)
    m.apply_story_event(event("a", "s1", 0.0, decision="new"))
    assert feed.subscribe(None).queue.empty()  # history is not pushed
    m.live = True
    client = feed.subscribe(None)
    m.apply_story_event(event("b", "s1", 1.0, size=2))
    m.apply_story_event(event("c", "s2", 2.0, decision="new"))
    got = [client.queue.get_nowait() for _ in range(2)]
    assert [name for _, name, _ in got] == ["join", "story"]
    resumed = feed.subscribe(feed.event_id(got[0][0]))
    assert [seq for seq, _, _ in resumed.backlog] == [got[1][0]] and not resumed.reset
    for n in range(5):  # the ring moves past the client's last id
        m.apply_story_event(event(f"d{n}", "s2", 3.0 + n, size=2 + n))
    assert feed.subscribe(feed.event_id(got[0][0])).reset
    assert feed.subscribe("another-worker-1").reset


def test_a_slow_client_is_marked_to_be_closed_not_buffered_forever() -> None:
    feed = EventFeed()
    client = feed.subscribe(None)
    client.queue = asyncio.Queue(maxsize=2)
    for n in range(3):
        feed.publish("join", {"n": n})
    assert client.overflowed and client.queue.qsize() == 2
    feed.unsubscribe(client)
    assert feed.clients == 0


def test_time_counts_coarsen_without_losing_counts() -> None:
    counts = TimeCounts()
    for minute in range(2000):
        counts.add(minute * 60.0)
    assert counts.width > BUCKET_LADDER[0] and len(counts.counts) <= 256
    assert sum(counts.counts.values()) == 2000
    width, bars = counts.bars(0.0, 1999 * 60.0)
    assert sum(n for _, n in bars) == 2000 and len(bars) <= 60
    assert all(start % width == 0 for start, _ in bars)


def test_bucket_width_follows_the_span() -> None:
    assert bucket_for_span(30 * 60, 60) == 60
    assert bucket_for_span(5 * HOUR, 60) == 900
    assert bucket_for_span(72 * HOUR, 60) == 3 * 3600
    assert bucket_for_span(30 * 60, 3600) == 3600  # never finer than what is kept
    width, bars = TimeCounts().bars(0.0, 10 * 365 * 86400.0)
    assert width == BUCKET_LADDER[-1] and len(bars) == 60


# --- merges ---------------------------------------------------------------------------------


def merged(survivor: str, absorbed: str, t: float, size: int) -> dict[str, Any]:
    """A ``merged`` event as the cluster agent sends it (survivor's summary after it)."""
    return {
        **event("bridge", survivor, t, size=size, headline="Flood and dam break"),
        "decision": "merged",
        "absorbed_id": absorbed,
        "merge": {"bridges": 2, "score": 0.84, "similarity": 0.7, "centroid_similarity": 0.53},
    }


def two_stories_merged(m: StoryReadModel) -> None:
    m.apply_story_event(event("a0", "s1", 0.0, decision="new", source="Wire"))
    m.apply_story_event(event("a1", "s1", 60.0, size=2, source="Wire"))
    m.apply_story_event(event("bridge", "s1", 180.0, size=3, source="Wire"))
    m.apply_story_event(
        event("b0", "s2", 120.0, decision="new", source="Daily", headline="Dam break upstream")
    )
    alert = {"id": "s2:emerging", "type": EMERGING, "time": "2026-01-01T00:00:00Z"}
    m.apply_alert({**alert, "data": {"story_id": "s2", "rule": "emerging"}})
    assert m.apply_story_event(merged("s1", "s2", 180.0, size=4)) is True


def test_a_merge_folds_the_absorbed_story_into_the_survivor() -> None:
    m = model()
    two_stories_merged(m)
    assert len(m) == 1 and m.get("s2") is None
    page = m.query(StoryQuery(sort="size"))
    assert [s["story_id"] for s in page.stories] == ["s1"]  # the absorbed story is not listed
    (survivor,) = page.stories
    assert survivor["size"] == 4 and survivor["articles_last_hour"] == 4
    assert survivor["sources"] == ["Wire", "Daily"]
    assert m.query(StoryQuery(source="Daily")).stories[0]["story_id"] == "s1"
    detail = m.detail("s1", 50)
    assert detail is not None and "merged_into" not in detail
    assert [a["article_id"] for a in detail["articles"]] == ["bridge", "b0", "a1", "a0"]
    assert detail["articles_seen"] == 4 and detail["alerts"][0]["id"] == "s2:emerging"
    (gone,) = detail["merged_from"]
    assert gone["story_id"] == "s2" and gone["headline"] == "Dam break upstream"
    assert gone["bridges"] == 2 and gone["article_id"] == "bridge"
    timeline = m.timeline("s1")
    assert timeline is not None and sum(b["articles"] for b in timeline["buckets"]) == 4


def test_the_absorbed_id_answers_the_survivor() -> None:
    m = model()
    two_stories_merged(m)
    detail = m.detail("s2", 50)
    assert detail is not None and detail["story_id"] == "s1" and detail["merged_into"] == "s1"
    assert m.merged_into("s2") == "s1" and m.merged_into("s1") is None
    timeline = m.timeline("s2")
    assert timeline is not None and timeline["story_id"] == "s1"
    found = m.articles("s2", None, 10)
    assert found is not None and len(found[0]) == 4


def test_a_replayed_merge_and_late_events_of_the_absorbed_story_land_once() -> None:
    m = model()
    two_stories_merged(m)
    assert m.apply_story_event(merged("s1", "s2", 180.0, size=4)) is False
    # At-least-once: an event of the absorbed story read again after its merge.
    assert m.apply_story_event(event("b0", "s2", 120.0, decision="new")) is False
    late = {"id": "s2:other", "type": EMERGING, "data": {"story_id": "s2", "rule": "other"}}
    assert m.apply_alert(late) is True
    detail = m.detail("s1", 50)
    assert detail is not None and detail["articles_seen"] == 4 and len(detail["merged_from"]) == 1
    assert [a["id"] for a in detail["alerts"]] == ["s2:emerging", "s2:other"]


def test_a_chain_of_merges_answers_the_last_survivor_and_expires_with_it() -> None:
    m = model(window_s=HOUR)
    two_stories_merged(m)
    m.apply_story_event(event("c0", "s3", 200.0, decision="new", size=1))
    m.apply_story_event(merged("s3", "s1", 240.0, size=5))
    detail = m.detail("s2", 50)
    assert detail is not None and detail["story_id"] == "s3"
    assert [g["story_id"] for g in detail["merged_from"]] == ["s2", "s1"]
    m.apply_story_event(event("z", "s9", 240.0 + 2 * HOUR, decision="new"))
    assert m.detail("s2", 50) is None and m.merged_into("s2") is None  # gone with s3


def test_the_feed_tells_the_page_about_a_merge() -> None:
    feed = EventFeed()
    m = model(feed=feed)
    m.live = True
    client = feed.subscribe(None)
    two_stories_merged(m)
    names = [client.queue.get_nowait()[1] for _ in range(client.queue.qsize())]
    assert names == ["story", "join", "join", "story", "alert", "merged"]
