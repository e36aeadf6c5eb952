"""Following a story merge after the engine (pure logic): the alert rule's and the
subscription matcher's per-story state fold into the survivor's, redirects, the ``merged``
event's record, and how `watch` / `history` print it."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import Settings
from streams.cli.history import history_row
from streams.contracts.records import MERGED, StoryEvent
from streams.engine.clustering import Assignment
from streams.engine.emerging import EmergingRule, EmergingState
from streams.engine.story_state import StoryMerge
from streams.replay.backtest import Backtest
from streams.replay.sources import Item
from streams.stages.merges import MERGED_INTO, MergedStates, absorb_emerging, redirect_record
from streams.subscriptions.matching import Matcher, StoryMatchState
from streams.watch import format_story_event
from tests.unit.test_alerts import event as alert_event
from tests.unit.test_clustering import art, e
from tests.unit.test_subscription_matching import fired, sub, update

RULE = EmergingRule(min_articles=3, min_sources=2, window_s=6 * 3600.0)
T0 = 1_790_000_000.0


def assignment(article: str, story: str, source: str, n: int) -> Assignment:
    """The n-th article of ``story`` (test_alerts' event, with an id of its own)."""
    made = alert_event(T0 + n, source, story=story, size=n, url=f"https://example.org/{article}")
    return replace(made, article_id=article)


def emerging_state(record: dict[str, Any] | None) -> EmergingState:
    return EmergingState.from_record(record) if record else EmergingState()


def feed(state: EmergingState, story: str, sources: list[str]) -> list[dict[str, Any]]:
    alerts = []
    for n, source in enumerate(sources, start=1):
        alert = RULE.observe(state, assignment(f"{story}-{n}", story, source, n))
        if alert is not None:
            alerts.append(alert)
    return alerts


# --- the emerging rule follows the merge ---------------------------------------------------


def test_the_survivor_inherits_an_alert_fired_for_the_absorbed_story() -> None:
    absorbed, survivor = EmergingState(), EmergingState()
    assert len(feed(absorbed, "b", ["One", "Two", "Three"])) == 1  # b fired
    assert feed(survivor, "a", ["Solo", "Solo", "Solo", "Solo"]) == []  # one source: not yet
    absorb_emerging(survivor, absorbed)
    assert survivor.fired
    # A new source joins the merged story: without the fold this would fire a second alert.
    late = assignment("a-late", "a", "Four", 9)
    assert RULE.observe(survivor, late) is None


def test_the_survivor_may_still_fire_what_neither_part_fired() -> None:
    absorbed, survivor = EmergingState(), EmergingState()
    assert feed(absorbed, "b", ["Only"]) == []
    assert feed(survivor, "a", ["Solo"]) == []
    absorb_emerging(survivor, absorbed)
    assert not survivor.fired
    assert {a for _, _, a in survivor.recent} == {"a-1", "b-1"}  # both parts' articles
    alert = RULE.observe(survivor, assignment("a-2", "a", "Solo", 2))
    assert alert is not None and alert["sources"] == ["Only", "Solo"]


def test_merged_states_fold_once_and_redirect_late_events() -> None:
    fired_b = EmergingState(fired=True)
    table: dict[str, Any] = {"b": fired_b.to_record(), "a": EmergingState().to_record()}
    states = MergedStates(table, emerging_state)
    assert states.merge("a", "b", absorb_emerging)
    assert states.redirects == {"b": "a"} and set(states.states) == {"a"}
    assert states.states["a"].fired
    assert not states.merge("a", "b", absorb_emerging)  # the replayed merged event
    story_id, state = states.get("b")  # a late event of the absorbed story
    assert story_id == "a" and state is states.states["a"]


def test_a_redirect_written_by_an_earlier_batch_is_followed() -> None:
    table: dict[str, Any] = {
        "b": redirect_record("a", T0),
        "a": redirect_record("c", T0),  # a was merged into c later
        "c": EmergingState(fired=True).to_record(),
    }
    states = MergedStates(table, emerging_state)
    assert states.resolve("b") == "c"
    story_id, state = states.get("b")
    assert story_id == "c" and state.fired
    assert not states.merge("a", "b", absorb_emerging)  # a replay: both live on as c
    assert table["b"] == {MERGED_INTO: "a", "last_seen": T0}


# --- subscriptions follow the merge ----------------------------------------------------------


def test_a_subscription_does_not_fire_again_for_the_merged_story() -> None:
    matcher = Matcher(
        [
            sub(
                "s1",
                keywords={"any": ["airlines"]},
                triggers=["new_story", "growth"],
                growth_steps=[10],
            )
        ]
    )
    absorbed, survivor = StoryMatchState(), StoryMatchState()
    assert fired(matcher, absorbed, update("Airlines cancel flights", story="b")) == [
        "s1:b:new_story"
    ]
    assert fired(matcher, survivor, update("Tsunami warning", story="a", size=1)) == []
    survivor.absorb(absorbed)
    assert survivor.fired["s1"].new_story and "airlines" in survivor.phrases
    # The merged story keeps matching; what fired for its part does not fire again, while a
    # growth step it genuinely reaches still does.
    later = update("Airlines cancel more flights", story="a", size=10)
    assert fired(matcher, survivor, later) == ["s1:a:growth:10"]


def test_growth_steps_and_sources_of_both_parts_are_kept() -> None:
    matcher = Matcher(
        [sub("s1", keywords={"any": ["quake"]}, triggers=["growth"], growth_steps=[10])]
    )
    absorbed, survivor = StoryMatchState(), StoryMatchState()
    assert fired(matcher, absorbed, update("Quake", story="b", size=10, source="AP")) == [
        "s1:b:growth:10"
    ]
    survivor.absorb(absorbed)
    assert survivor.fired["s1"].growth_step == 10
    assert set(survivor.sources.values()) == {"AP"} and survivor.size == 10
    assert fired(matcher, survivor, update("Quake", story="a", size=12)) == []


# --- the merged event --------------------------------------------------------------------


MERGE = StoryMerge(
    story_id="st-a",
    absorbed_id="st-b",
    article_id="x2",
    bridges=2,
    score=0.83691,
    similarity=0.70412,
    centroid_similarity=0.52654,
    story_size=4,
    absorbed_size=3,
    event_time=T0,
)


def assigned() -> StoryEvent:
    return StoryEvent.build(assignment("x2", "st-a", "Solo", 7), T0 + 1, text="x", centroid="AA==")


def test_the_merged_event_carries_both_ids_and_the_evidence() -> None:
    event = StoryEvent.merged(MERGE, assigned())
    assert event.is_merge and event.decision == MERGED
    assert (event.story_id, event.absorbed_id, event.article_id) == ("st-a", "st-b", "x2")
    assert event.merge == {
        "bridges": 2,
        "score": 0.8369,
        "similarity": 0.7041,
        "centroid_similarity": 0.5265,
        "survivor_size": 4,
        "absorbed_size": 3,
    }
    assert event.story_size == 7  # the survivor after the merge, as the article left it
    assert event.text is None and event.shared_terms is None
    decoded = StoryEvent.loads(event.dumps())
    assert decoded.absorbed_id == "st-b" and decoded.merge == event.merge


def test_events_written_before_merges_still_decode() -> None:
    old = assigned().asdict()
    for name in ("absorbed_id", "merge"):
        del old[name]
    decoded = StoryEvent.loads(json.dumps(old).encode())
    assert not decoded.is_merge and decoded.absorbed_id is None and decoded.merge is None


def test_watch_and_history_print_a_merge() -> None:
    value = json.loads(StoryEvent.merged(MERGE, assigned()).dumps())
    line = format_story_event(value)
    assert "MERGED st-b -> st-a" in line and "bridges=2" in line and "\n" not in line
    row = history_row("stories", int(T0 * 1000), value)
    assert "merged" in row and "absorbed st-b" in row


# --- `storywatch replay` follows merges like the worker --------------------------------------


def test_a_backtest_follows_a_merge_and_does_not_refire(tmp_path: Path) -> None:
    """Story A (5 articles, one source), story B (2, two sources: fires), two bridges merge
    B into A, then two more sources join A: without the fold A would fire too."""
    settings = Settings(
        story_threshold=0.55, merge_bridges=2, merge_score=0.6, story_window_hours=10.0
    )
    rule = EmergingRule(min_articles=2, min_sources=2, window_s=6 * 3600.0)
    test = Backtest(settings, [rule], out_dir=tmp_path)
    halfway = ((e(0) + e(1)) / math.sqrt(2)).astype(np.float32)
    steps = [(f"a{n}", e(0), "Solo") for n in range(5)]
    steps += [("b0", e(1), "One"), ("b1", e(1), "Two")]
    steps += [("bridge0", halfway, "Solo"), ("bridge1", halfway, "Solo")]
    steps += [("late0", e(0), "Three"), ("late1", e(0), "Four")]
    for n, (aid, vector, source) in enumerate(steps):
        article = art(aid, title=f"Zq{n} {aid}", text="", source=source)
        test.observe(Item(article, vector, T0 + n, None, int((T0 + n) * 1000)))
    test.close(test.summary())
    a, b = test.assignments["a0"], test.assignments["b0"]
    assert test.summary()["stories_merged"] == 1
    assert test.alerted == {rule.name: {b}}  # B's alert only: A inherited it
    written = [json.loads(x) for x in (tmp_path / "stories.jsonl").read_text().splitlines()]
    merges = [x for x in written if x["decision"] == MERGED]
    assert [(x["story_id"], x["absorbed_id"]) for x in merges] == [(a, b)]
    assert a in test.stories and b not in test.stories
