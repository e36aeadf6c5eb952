"""Subscription matching: whole-word phrases accumulated over a story, sources, sizes, the
semantic score, and triggers that fire once (growth: once per step)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.clustering import Assignment
from streams.subscriptions.matching import (
    MAX_STORY_SOURCES,
    KeywordIndex,
    Match,
    Matcher,
    SemanticIndex,
    SemanticIndexError,
    StoryMatchState,
    StoryUpdate,
    phrase_key,
    phrase_tokens,
)
from streams.subscriptions.model import Subscription, parse_subscription

T0 = 1_796_119_200.0


def sub(sub_id: str, enabled: bool = True, **filter_fields: Any) -> Subscription:
    spec = parse_subscription({"name": sub_id, "filter": filter_fields, "enabled": enabled})
    return replace(Subscription.create(spec, "owner", T0), id=sub_id)


def update(
    title: str = "Nothing much",
    *,
    text: str = "",
    source: str = "Reuters",
    size: int = 1,
    source_count: int = 1,
    emerging: bool = False,
    story: str = "st-1",
) -> StoryUpdate:
    return StoryUpdate(
        story_id=story,
        title=title,
        text=text,
        source=source,
        size=size,
        source_count=source_count,
        headline="Headline",
        keywords=("k",),
        url=None,
        event_time=T0 + size,
        decision="new" if size == 1 else "joined",
        emerging=emerging,
    )


def fired(matcher: Matcher, state: StoryMatchState, *events: StoryUpdate) -> list[str]:
    """The dedup keys fired by a run of events."""
    return [m.dedup_key for e in events for m in matcher.observe(e, state, {})]


# --- tokens and the keyword index ---------------------------------------------------------


def test_phrase_tokens() -> None:
    assert phrase_tokens("Putin's Central-Bank, 2026!") == ("putin", "s", "central", "bank", "2026")
    assert phrase_tokens("STRASSE straße") == ("strasse", "strasse")
    assert phrase_tokens("cafe\u0301") == phrase_tokens("caf\u00e9") == ("café",)
    assert phrase_tokens("snake_case") == ("snake", "case")
    assert phrase_key("  Central   BANK ") == "central bank"


def test_possessive_matches_the_name() -> None:
    index = KeywordIndex.build([sub("s", keywords={"any": ["putin"]})])
    assert index.find(phrase_tokens("Putin's visit")) == {"putin"}


@pytest.mark.parametrize(
    ("phrase", "text", "found"),
    [
        ("art", "a new article on art", True),
        ("art", "a new article", False),
        ("central bank", "...the Central Bank said", True),
        ("central bank", "central banking rules", False),
        ("central bank", "central the bank", False),
        ("bank", "central banking", False),
    ],
)
def test_whole_words_not_substrings(phrase: str, text: str, found: bool) -> None:
    index = KeywordIndex.build([sub("s", keywords={"any": [phrase]})])
    assert index.find(phrase_tokens(text)) == ({phrase_key(phrase)} if found else set())


def test_index_only_looks_at_phrases_sharing_the_first_token() -> None:
    index = KeywordIndex.build(
        [sub("a", keywords={"any": ["bank run"]}), sub("b", keywords={"all": ["central bank"]})]
    )
    assert index.find(phrase_tokens("a bank run")) == {"bank run"}
    assert index.find(phrase_tokens("the central bank")) == {"central bank"}
    assert index.find(phrase_tokens("run bank central")) == set()
    assert index.keys == {"bank run", "central bank"}
    assert set(index._by_first) == {"bank", "central"}
    assert [e.key for e in index._by_first["bank"]] == ["bank run"]


def test_index_skips_disabled_subscriptions() -> None:
    index = KeywordIndex.build([sub("off", enabled=False, keywords={"any": ["fed"]})])
    assert index.find(("fed",)) == set()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3), max_size=6),
    st.lists(st.sampled_from("abcde"), max_size=12),
)
def test_index_agrees_with_a_naive_scan(phrases: list[list[str]], tokens: list[str]) -> None:
    subs = [sub(f"s{i}", keywords={"any": [" ".join(p)]}) for i, p in enumerate(phrases)]
    naive = {
        " ".join(p) for p in phrases if any(tokens[i : i + len(p)] == p for i in range(len(tokens)))
    }
    assert KeywordIndex.build(subs).find(tokens) == naive


# --- keyword rules ------------------------------------------------------------------------


def test_any_needs_one_phrase() -> None:
    matcher = Matcher([sub("s", keywords={"any": ["fed", "ecb"]})])
    assert fired(matcher, StoryMatchState(), update("Markets quiet")) == []
    assert fired(matcher, StoryMatchState(), update("The ECB holds")) == ["s:st-1:new_story"]


def test_all_accumulates_across_articles() -> None:
    matcher = Matcher([sub("s", keywords={"all": ["fed", "rates"]})])
    state = StoryMatchState()
    assert fired(matcher, state, update("Fed meets")) == []
    assert fired(matcher, state, update("Nothing new", text="on rates", size=2)) == [
        "s:st-1:new_story"
    ]
    assert state.phrases == {"fed", "rates"}


def test_all_in_one_article_does_not_need_a_second() -> None:
    matcher = Matcher([sub("s", keywords={"all": ["fed", "rates"]})])
    assert fired(matcher, StoryMatchState(), update("Fed", text="rates")) == ["s:st-1:new_story"]


def test_none_fails_the_story_for_good() -> None:
    matcher = Matcher(
        [sub("s", keywords={"none": ["crypto"]}, triggers=["growth"], growth_steps=[2, 3])]
    )
    state = StoryMatchState()
    assert fired(matcher, state, update("Fed", size=1)) == []
    assert fired(matcher, state, update("Fed", size=2)) == ["s:st-1:growth:2"]
    assert fired(matcher, state, update("Crypto slump", size=3)) == []
    assert fired(matcher, state, update("Fed", size=4)) == []  # the story once had "crypto"


def test_none_on_the_first_article_never_matches() -> None:
    matcher = Matcher([sub("s", keywords={"any": ["fed"], "none": ["crypto"]})])
    state = StoryMatchState()
    assert fired(matcher, state, update("Fed and crypto")) == []
    assert fired(matcher, state, update("Fed again", size=2)) == []


def test_why_lists_matched_phrases_as_written() -> None:
    matcher = Matcher([sub("s", keywords={"any": ["Central Bank", "ECB"], "all": ["Rates"]})])
    [match] = matcher.observe(update("central bank moves rates"), StoryMatchState(), {})
    assert match.why == {
        "keywords": ["Central Bank", "Rates"],
        "semantic_score": None,
        "sources": None,
    }


def test_state_holds_only_subscribed_phrases() -> None:
    matcher = Matcher([sub("s", keywords={"any": ["fed"]})])
    state = StoryMatchState()
    matcher.observe(update("Fed " + "word " * 500), state, {})
    assert state.phrases == {"fed"}


# --- sources and sizes -----------------------------------------------------------------------


def test_allow_needs_one_allowed_source() -> None:
    matcher = Matcher([sub("s", sources={"allow": ["reuters", "AP"]})])
    state = StoryMatchState()
    assert fired(matcher, state, update(source="Blog One")) == []
    [match] = matcher.observe(update(source="Reuters", size=2, source_count=2), state, {})
    assert match.trigger == "new_story"
    assert match.why["sources"] == ["Reuters"]  # as the story carries it


def test_deny_needs_one_source_not_denied() -> None:
    matcher = Matcher(
        [sub("s", sources={"deny": ["Spam Daily"]}, triggers=["growth"], growth_steps=[2, 3])]
    )
    state = StoryMatchState()
    assert fired(matcher, state, update(source="spam daily", size=1)) == []
    assert fired(matcher, state, update(source="Spam Daily", size=2)) == []  # only denied
    assert fired(matcher, state, update(source="Reuters", size=3)) == ["s:st-1:growth:3"]


def test_a_denied_outlet_joining_does_not_stop_the_story() -> None:
    matcher = Matcher(
        [sub("s", sources={"deny": ["Spam Daily"]}, triggers=["growth"], growth_steps=[2])]
    )
    state = StoryMatchState()
    assert fired(matcher, state, update(source="Reuters")) == []
    assert fired(matcher, state, update(source="Spam Daily", size=2)) == ["s:st-1:growth:2"]


def test_min_size_and_min_sources() -> None:
    matcher = Matcher([sub("s", min_size=3, min_sources=2)])
    state = StoryMatchState()
    assert fired(matcher, state, update(size=1, source_count=1)) == []
    assert fired(matcher, state, update(size=3, source_count=1)) == []
    assert fired(matcher, state, update(size=3, source_count=2)) == ["s:st-1:new_story"]
    state = StoryMatchState()
    assert fired(matcher, state, update(size=2, source_count=2)) == []


def test_sources_are_capped_but_the_event_source_still_counts() -> None:
    matcher = Matcher([sub("s", sources={"allow": ["Late Wire"]})])
    state = StoryMatchState(sources={f"s{i}": f"S{i}" for i in range(MAX_STORY_SOURCES)})
    [match] = matcher.observe(update(source="Late Wire", size=1001), state, {})
    assert match.why["sources"] == ["Late Wire"]
    assert len(state.sources) == MAX_STORY_SOURCES


# --- semantic -------------------------------------------------------------------------------


def test_semantic_score_against_the_threshold() -> None:
    matcher = Matcher([sub("s", query="interest rates", query_threshold=0.5)])
    assert matcher.observe(update(), StoryMatchState(), {}) == []  # no score: no match
    assert matcher.observe(update(), StoryMatchState(), {"other": 0.9}) == []
    assert matcher.observe(update(), StoryMatchState(), {"s": 0.49}) == []
    [match] = matcher.observe(update(), StoryMatchState(), {"s": 0.5})
    assert match.why["semantic_score"] == 0.5


def fake_encode(calls: list[list[str]]) -> Any:
    table = {"rates": [1.0, 0.0, 0.0], "floods": [0.0, 2.0, 0.0]}

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.array([table[t] for t in texts], dtype=np.float32)

    return encode


def test_semantic_index_build_and_scores() -> None:
    calls: list[list[str]] = []
    subs = [
        sub("b", query="floods"),
        sub("a", query="rates"),
        sub("c", query="rates"),
        sub("d"),
        sub("e", enabled=False, query="floods"),
    ]
    index = SemanticIndex.build(subs, fake_encode(calls))
    assert calls == [["floods", "rates"]]  # each distinct query once, disabled ones skipped
    assert index.ids == ("a", "b", "c")
    assert index.key == (("a", "rates"), ("b", "floods"), ("c", "rates"))
    assert np.allclose(np.linalg.norm(index.matrix, axis=1), 1.0)
    centroids = np.array([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    scores = index.scores(centroids)
    assert scores.shape == (3, 3)
    expected = np.array([[1, 0, 1], [0.7071, 0.7071, 0.7071], [0, 0, 0]])
    assert np.allclose(scores, expected, atol=1e-4)
    assert index.score_maps(centroids[0])[0] == pytest.approx({"a": 1.0, "b": 0.0, "c": 1.0})


def test_semantic_index_from_a_matrix() -> None:
    index = SemanticIndex([("s", "q")], [[0.0, 3.0]])
    assert index.scores([[0.0, 1.0], [1.0, 0.0]]).tolist() == [[1.0], [0.0]]
    with pytest.raises(SemanticIndexError, match="same model"):
        index.scores([[1.0, 0.0, 0.0]])
    with pytest.raises(SemanticIndexError, match="one embedding row"):
        SemanticIndex([("s", "q"), ("t", "r")], [[0.0, 3.0]])


def test_empty_semantic_index() -> None:
    index = SemanticIndex.build([sub("s")], fake_encode([]))
    assert index.key == ()
    assert index.scores(np.ones((4, 3))).shape == (4, 0)


def test_key_changes_with_a_query() -> None:
    before = SemanticIndex.build([sub("a", query="rates")], fake_encode([]))
    after = SemanticIndex.build([sub("a", query="floods")], fake_encode([]))
    assert before.key != after.key


# --- triggers --------------------------------------------------------------------------------


def test_new_story_fires_once() -> None:
    matcher = Matcher([sub("s")])
    state = StoryMatchState()
    assert fired(matcher, state, *(update(size=n) for n in range(1, 6))) == ["s:st-1:new_story"]
    # Still once when another trigger keeps the subscription live for the story.
    matcher = Matcher([sub("s", triggers=["new_story", "growth"], growth_steps=[3])])
    state = StoryMatchState()
    assert fired(matcher, state, *(update(size=n) for n in range(1, 6))) == [
        "s:st-1:new_story",
        "s:st-1:growth:3",
    ]


def test_growth_fires_once_per_step_and_once_for_several() -> None:
    matcher = Matcher([sub("s", triggers=["growth"], growth_steps=[2, 4, 6, 8])])
    state = StoryMatchState()
    sizes = [1, 2, 3, 2, 7, 7, 8, 9, 20]
    keys = fired(matcher, state, *(update(size=n) for n in sizes))
    # 2 at size 2; 4 and 6 crossed together at 7: one alert for 6; then 8.
    assert keys == ["s:st-1:growth:2", "s:st-1:growth:6", "s:st-1:growth:8"]


def test_growth_with_the_default_steps() -> None:
    matcher = Matcher([sub("s", triggers=["growth"])])
    state = StoryMatchState()
    matches = [m for n in (5, 10, 11, 60, 200) for m in matcher.observe(update(size=n), state, {})]
    assert [(m.trigger, m.step) for m in matches] == [
        ("growth", 10),
        ("growth", 50),
        ("growth", 100),
    ]


def test_emerging_fires_only_when_emerging() -> None:
    matcher = Matcher([sub("s", triggers=["emerging"])])
    state = StoryMatchState()
    assert fired(matcher, state, update(size=1), update(size=2)) == []
    assert fired(matcher, state, update(size=3, emerging=True)) == ["s:st-1:emerging"]
    assert fired(matcher, state, update(size=4, emerging=True), update(size=5)) == []


def test_emerging_before_the_story_matches_fires_when_it_matches() -> None:
    matcher = Matcher([sub("s", triggers=["emerging", "new_story"], min_size=3)])
    state = StoryMatchState()
    assert fired(matcher, state, update(size=2, emerging=True)) == []
    assert fired(matcher, state, update(size=3)) == ["s:st-1:new_story", "s:st-1:emerging"]


def test_disabled_subscription_never_matches() -> None:
    matcher = Matcher([sub("off", enabled=False), sub("on")])
    assert [s.id for s in matcher.subscriptions] == ["on"]
    assert fired(matcher, StoryMatchState(), update()) == ["on:st-1:new_story"]


def test_match_fields_and_dedup_key() -> None:
    matcher = Matcher([sub("s", triggers=["new_story", "growth"], growth_steps=[1])])
    matches = matcher.observe(update(story="st-9"), StoryMatchState(), {})
    assert matches == [
        Match("s", "st-9", "new_story", None, matches[0].why),
        Match("s", "st-9", "growth", 1, matches[0].why),
    ]
    assert [m.dedup_key for m in matches] == ["s:st-9:new_story", "s:st-9:growth:1"]


def test_stories_are_independent() -> None:
    matcher = Matcher([sub("s")])
    a, b = StoryMatchState(), StoryMatchState()
    assert fired(matcher, a, update(story="st-a")) == ["s:st-a:new_story"]
    assert fired(matcher, b, update(story="st-b")) == ["s:st-b:new_story"]


# --- state -----------------------------------------------------------------------------------

EVENTS = [
    update("Fed meets", source="AP", size=1, source_count=1),
    update("Markets", text="rates up", source="Reuters", size=3, source_count=2),
    update("More", source="Blog", size=10, source_count=3, emerging=True),
    update("Fed again", source="ap", size=12, source_count=3),
    update("Wider", source="BBC", size=26, source_count=4),
    update("Wider still", source="CNN", size=60, source_count=5),
]


def subs_for_state() -> list[Subscription]:
    return [
        sub("kw", keywords={"all": ["fed", "rates"]}, triggers=["new_story", "growth"]),
        sub("em", triggers=["emerging"], sources={"allow": ["AP"]}),
        sub("big", min_size=20, min_sources=4, triggers=["new_story", "growth"]),
        sub("sem", query="rates", triggers=["growth"]),
    ]


def test_state_round_trip_then_continue_gives_the_same_alerts() -> None:
    matcher = Matcher(subs_for_state())
    scores = {"sem": 0.9}
    straight = StoryMatchState()
    expected = [[m.dedup_key for m in matcher.observe(e, straight, scores)] for e in EVENTS]
    assert len([k for keys in expected for k in keys]) >= 6  # every kind of trigger fires

    for cut in range(len(EVENTS) + 1):
        state = StoryMatchState()
        got = [[m.dedup_key for m in matcher.observe(e, state, scores)] for e in EVENTS[:cut]]
        state = StoryMatchState.from_record(json.loads(json.dumps(state.to_record())))
        got += [[m.dedup_key for m in matcher.observe(e, state, scores)] for e in EVENTS[cut:]]
        assert got == expected
    assert StoryMatchState.from_record(straight.to_record()) == straight


def test_state_record_contents() -> None:
    matcher = Matcher(subs_for_state())
    state = StoryMatchState()
    for e in EVENTS[:3]:
        matcher.observe(e, state, {})
    record = state.to_record()
    assert record["phrases"] == ["fed", "rates"]
    assert record["sources"] == ["AP", "Reuters", "Blog"]
    assert (record["size"], record["source_count"], record["emerging"]) == (10, 3, True)
    assert record["fired"] == {"em": [False, True, 0], "kw": [True, False, 10]}


def test_from_assignment() -> None:
    assignment = Assignment(
        article_id="a1",
        story_id="st-1",
        dup_group_id="dg-1",
        decision="joined",
        similarity=0.8,
        story_size=4,
        source_count=3,
        first_seen=T0,
        last_seen=T0 + 5,
        headline="Fed holds rates",
        event_time=T0 + 5,
        source="AP",
        url="https://ap.example/1",
        title="Fed holds",
        keywords=["fed", "rates"],
    )
    got = StoryUpdate.from_assignment(assignment, text="body", emerging=True)
    assert got == StoryUpdate(
        story_id="st-1",
        title="Fed holds",
        text="body",
        source="AP",
        size=4,
        source_count=3,
        headline="Fed holds rates",
        keywords=("fed", "rates"),
        url="https://ap.example/1",
        event_time=T0 + 5,
        decision="joined",
        emerging=True,
    )
