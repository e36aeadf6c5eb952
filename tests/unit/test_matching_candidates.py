"""The matcher evaluates only its candidate rules (phrase index, semantic hits, filter-only
rules) and still fires exactly what a scan of every subscription fires."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from streams.subscriptions.matching import (
    Match,
    Matcher,
    SemanticIndex,
    StoryMatchState,
    StoryUpdate,
    _Rule,
)
from streams.subscriptions.model import Subscription
from tests.unit.test_subscription_matching import sub, update

_WORDS = [f"w{i}" for i in range(300)]
_SOURCES = ["Reuters", "AP", "BBC", "AFP", "CNN", "Le Monde", "NHK", "DW"]
_DIM = 16
_FILLER = [f"f{i}" for i in range(700)]  # words no subscription uses


class ScanMatcher(Matcher):
    """The reference: every enabled rule evaluated on every event (the matcher before its
    candidate indexes)."""

    def _candidates(self, state: StoryMatchState, semantic: Mapping[str, float]) -> list[int]:
        return list(range(len(self._rules)))


def _phrase(rng: random.Random) -> str:
    n = 1 if rng.random() < 0.8 else 2
    return " ".join(rng.sample(_WORDS, n))


def _random_filter(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    kind = rng.random()
    keywords: dict[str, list[str]] = {}
    if kind < 0.55:
        keywords["any"] = [_phrase(rng) for _ in range(rng.randint(1, 3))]
    if 0.4 < kind < 0.7:
        keywords["all"] = [_phrase(rng) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.25:
        keywords["none"] = [_phrase(rng)]
    if keywords:
        spec["keywords"] = keywords
    if 0.6 < kind < 0.97 or rng.random() < 0.1:
        spec["query"] = f"query {rng.randrange(30)}"
        spec["query_threshold"] = round(rng.uniform(0.3, 0.9), 2)
    if rng.random() < 0.3:
        spec["min_size"] = rng.randint(1, 6)
    if rng.random() < 0.2:
        spec["min_sources"] = rng.randint(1, 4)
    if rng.random() < 0.15:
        spec["sources"] = {"allow": rng.sample(_SOURCES, 2)}
    elif rng.random() < 0.15:
        spec["sources"] = {"deny": rng.sample(_SOURCES, 3)}
    spec["triggers"] = rng.sample(["new_story", "emerging", "growth"], rng.randint(1, 3))
    spec["growth_steps"] = sorted(rng.sample(range(2, 12), rng.randint(1, 3)))
    return spec


def random_subscriptions(rng: random.Random, n: int) -> list[Subscription]:
    """``n`` subscriptions: keyword, semantic, mixed and filter-only, some disabled."""
    return [sub(f"s{i:05d}", enabled=rng.random() > 0.05, **_random_filter(rng)) for i in range(n)]


def _fake_encode(texts: list[str]) -> np.ndarray:
    return np.stack(
        [np.random.default_rng(zlib.crc32(t.encode())).normal(size=_DIM) for t in texts]
    )


Merge = tuple[str, str]  # (survivor, absorbed) story ids


def random_events(
    rng: random.Random, stories: int, events: int
) -> Iterator[tuple[StoryUpdate, np.ndarray] | Merge]:
    """Story events over ``stories`` stories, growing, some emerging, with centroids; now
    and then a merge of two stories."""
    sizes = dict.fromkeys(range(stories), 0)
    emerging: set[int] = set()
    for _ in range(events):
        story = min(rng.randrange(stories), rng.randrange(stories))  # a few large stories
        if rng.random() < 0.01:
            yield f"st-{story}", f"st-{rng.randrange(stories)}"
            continue
        sizes[story] += 1
        if sizes[story] > 3 and rng.random() < 0.1:
            emerging.add(story)
        title = " ".join(rng.choices([*_WORDS, *_FILLER], k=rng.randint(2, 8)))
        text = " ".join(rng.choices([*_WORDS, *_FILLER], k=rng.randint(0, 8)))
        size = sizes[story]
        event = update(
            title,
            text=text,
            source=rng.choice(_SOURCES),
            size=size,
            source_count=min(size, rng.randint(1, 5)),
            emerging=story in emerging,
            story=f"st-{story}",
        )
        yield event, np.random.default_rng(rng.randrange(2**32)).normal(size=_DIM)


Scored = tuple[StoryUpdate, Mapping[str, float]] | Merge


def _run(matcher: Matcher, events: list[Scored]) -> tuple[list[Match], dict[str, Any]]:
    """What ``matcher`` fires over ``events``, and the story states it leaves."""
    states: dict[str, StoryMatchState] = {}
    fired: list[Match] = []
    for item in events:
        if isinstance(item[0], str):
            survivor, absorbed = item
            if survivor != absorbed and absorbed in states:
                states.setdefault(survivor, StoryMatchState()).absorb(states.pop(absorbed))
            continue
        event, scores = item
        fired += matcher.observe(
            event, states.setdefault(event.story_id, StoryMatchState()), scores
        )
    return fired, {story: state.to_record() for story, state in states.items()}


def _scored(
    events: list[tuple[StoryUpdate, np.ndarray] | Merge], scores: list[dict[str, float]]
) -> list[Scored]:
    """The events with their scores (``scores``: one per story event, in order)."""
    rows = iter(scores)
    return [item if isinstance(item[0], str) else (item[0], next(rows)) for item in events]


@pytest.mark.parametrize("seed", [1, 2])
def test_candidates_fire_exactly_what_a_full_scan_fires(seed: int) -> None:
    rng = random.Random(seed)
    subs = random_subscriptions(rng, 1000)
    index = SemanticIndex.build(subs, _fake_encode)
    events = list(random_events(rng, stories=25, events=400))
    centroids = np.stack([item[1] for item in events if not isinstance(item[0], str)])
    full = index.score_maps(centroids)
    hits = index.hits(centroids)
    assert 0 < sum(map(len, hits)) < sum(map(len, full)) / 10  # the hits are a real subset

    expected, expected_states = _run(ScanMatcher(subs), _scored(events, full))
    by_hits = _run(Matcher(subs), _scored(events, hits))
    by_full = _run(Matcher(subs), _scored(events, full))

    assert len(expected) > 1000  # every trigger kind fires many times: a real comparison
    assert any(isinstance(item[0], str) for item in events)  # merges too
    assert {m.trigger for m in expected} == {"new_story", "emerging", "growth"}
    assert by_hits == (expected, expected_states)
    assert by_full == (expected, expected_states)


def test_a_rule_waiting_for_min_size_fires_on_a_later_event_without_its_phrase() -> None:
    subs = [
        sub(
            "a",
            keywords={"any": ["floods"]},
            min_size=3,
            triggers=["new_story", "growth"],
            growth_steps=[4],
        )
    ]
    state = StoryMatchState()
    matcher = Matcher(subs)
    assert matcher.observe(update("Floods in Spain"), state, {}) == []
    assert matcher.observe(update("Rain", size=2), state, {}) == []
    assert [m.dedup_key for m in matcher.observe(update("Rain", size=3), state, {})] == [
        "a:st-1:new_story"
    ]
    assert [m.dedup_key for m in matcher.observe(update("Rain", size=4), state, {})] == [
        "a:st-1:growth:4"
    ]


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The subscription ids whose rule the matcher evaluated, in order."""
    seen: list[str] = []
    evaluate = _Rule.why

    def spy(rule: _Rule, *args: Any) -> dict[str, Any] | None:
        seen.append(rule.sub.id)
        return evaluate(rule, *args)

    monkeypatch.setattr(_Rule, "why", spy)
    return seen


def test_an_event_with_one_phrase_evaluates_only_its_candidates(evaluations: list[str]) -> None:
    subs = [sub(f"k{i:04d}", keywords={"any": [f"topic{i}"]}) for i in range(1000)]
    subs += [sub(f"q{i:04d}", query=f"query {i}", query_threshold=0.5) for i in range(1000)]
    subs += [
        sub("fed", keywords={"any": ["fed"]}),
        sub("fed-rates", keywords={"all": ["fed", "rates"]}),
        sub("near", query="the fed", query_threshold=0.9),
        sub("everything", min_size=1),  # filter-only: a candidate on every event
        sub("not-crypto", keywords={"none": ["crypto"]}),  # filter-only as well
    ]
    semantic = {f"q{i:04d}": 0.1 for i in range(1000)} | {"near": 0.95}

    fired = Matcher(subs).observe(update("The Fed holds"), StoryMatchState(), semantic)

    assert sorted(evaluations) == ["everything", "fed", "fed-rates", "near", "not-crypto"]
    assert [m.subscription_id for m in fired] == ["fed", "near", "everything", "not-crypto"]


def test_a_story_that_matched_before_is_evaluated_for_its_later_triggers(
    evaluations: list[str],
) -> None:
    subs = [sub(f"k{i:04d}", keywords={"any": [f"topic{i}"]}) for i in range(100)]
    subs.append(
        sub("fed", keywords={"any": ["fed"]}, triggers=["growth", "emerging"], growth_steps=[2])
    )
    matcher, state = Matcher(subs), StoryMatchState()
    matcher.observe(update("The Fed holds"), state, {})
    evaluations.clear()

    later = matcher.observe(update("Markets calm", size=2, emerging=True), state, {})

    assert evaluations == ["fed"]
    assert [m.dedup_key for m in later] == ["fed:st-1:emerging", "fed:st-1:growth:2"]


def test_semantic_hits_keep_the_scores_at_or_above_each_threshold() -> None:
    index = SemanticIndex(
        [("a", "x"), ("b", "y"), ("c", "z")], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, 0.5, 0.8]
    )
    (hits,) = index.hits([[1.0, 0.0]])
    assert hits == pytest.approx({"a": 1.0})  # b scored 0, c 0.707 < 0.8
    (hits,) = index.hits([[1.0, 1.0]])
    assert hits == pytest.approx({"a": 0.7071, "b": 0.7071, "c": 1.0}, abs=1e-4)
    assert SemanticIndex([("a", "x")], [[1.0, 0.0]]).hits([[0.0, 1.0]]) == [{"a": 0.0}]


def test_a_score_equal_to_the_threshold_is_a_candidate_and_a_hit() -> None:
    matcher = Matcher([sub("s", query="rates", query_threshold=0.5)])
    assert [m.subscription_id for m in matcher.observe(update(), StoryMatchState(), {"s": 0.5})]
    index = SemanticIndex([("s", "rates")], [[1.0, 0.0]], [1.0])
    assert index.hits([[2.0, 0.0]]) == [{"s": 1.0}]


def test_a_rule_with_nothing_due_is_not_evaluated(evaluations: list[str]) -> None:
    matcher = Matcher(
        [
            sub(
                "fed",
                keywords={"any": ["fed"]},
                triggers=["new_story", "growth"],
                growth_steps=[5, 10],
            )
        ]
    )
    state = StoryMatchState()
    assert [m.trigger for m in matcher.observe(update("The Fed"), state, {})] == ["new_story"]
    evaluations.clear()
    for size in (2, 3, 4):  # new_story fired, the next growth step not reached: idle
        assert matcher.observe(update("The Fed", size=size), state, {}) == []
    assert evaluations == []
    assert [m.dedup_key for m in matcher.observe(update("Fed", size=5), state, {})] == [
        "fed:st-1:growth:5"
    ]
    assert evaluations == ["fed"]
