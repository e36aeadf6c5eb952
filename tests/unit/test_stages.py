"""The stages of streams/stages as plain batch steps: the match stage reads the alert stage's
verdict (the emerging rule runs once), old table records still load, one merge fold."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from streams.engine.emerging import EmergingRule, EmergingState
from streams.engine.expiry import InactiveKeys
from streams.stages.alerts import AlertStage, Emerging
from streams.stages.cluster import StoryStep
from streams.stages.matching import MatchStage, Subscriptions
from streams.stages.merges import merge_pair, resolve
from streams.subscriptions.matching import FiredTriggers, StoryMatchState
from tests.unit.test_alerts import event as alert_event
from tests.unit.test_subscription_matching import sub

RULE = EmergingRule(min_articles=3, min_sources=2, window_s=6 * 3600.0)
T0 = 1_790_000_000.0
WINDOW_S = 48 * 3600.0


def step(n: int, source: str, story: str = "st") -> StoryStep:
    made = alert_event(T0 + n, source, story=story, size=n, url=f"https://example.org/{n}")
    return StoryStep(replace(made, article_id=f"{story}-{n}"), text="")


def stages() -> tuple[AlertStage, MatchStage, Subscriptions]:
    subs = Subscriptions.build([sub("em", triggers=["emerging"])], None)
    return (
        AlertStage(RULE, InactiveKeys(WINDOW_S), "/t"),
        MatchStage(InactiveKeys(WINDOW_S), "/t/subscriptions"),
        subs,
    )


def test_the_match_stage_fires_emerging_on_the_alert_stages_verdict() -> None:
    alerting, matching, subs = stages()
    alerts_table: dict[str, Any] = {}
    matches_table: dict[str, Any] = {}
    steps = [step(1, "A"), step(2, "A"), step(3, "B"), step(4, "C")]
    batch = alerting.run(alerts_table, steps)
    assert [(a.step, a.event["id"]) for a in batch.alerts] == [(2, "st:emerging")]
    assert [v.fired if v else None for v in batch.emerging] == [False, False, True, True]
    matched = matching.run(matches_table, steps, batch.emerging, subs)
    assert [(a.step, a.event["id"]) for a in matched.alerts] == [(2, "em:st:emerging")]
    urls = matched.alerts[0].event["data"]["story"]["sample_urls"]
    assert urls == list(batch.emerging[2].urls)  # type: ignore[union-attr]
    alerting.commit(batch, alerts_table)
    matching.commit(matched, matches_table)
    # One copy of the rule's state per story: the alert stage's.
    assert alerts_table["st"]["fired"] is True
    assert set(matches_table["st"]) == {"match", "last_seen"}


def test_a_match_record_written_with_the_rules_copy_still_loads() -> None:
    """Before the match stage read the alert stage's verdict, its records held the rule's
    state beside "match": they load, what fired stays fired, and are written without it."""
    _, matching, subs = stages()
    old_match = StoryMatchState(size=3, source_count=2, emerging=True)
    old_match.fired["em"] = FiredTriggers(emerging=True)
    burst = EmergingState(fired=True, urls=["https://example.org/1"])
    table: dict[str, Any] = {
        "st": {**burst.to_record(), "match": old_match.to_record(), "last_seen": T0 + 3}
    }
    matched = matching.run(table, [step(4, "D")], [Emerging(True, ())], subs)
    assert matched.alerts == []  # emerging fired before the upgrade: not again
    matching.commit(matched, table)
    assert set(table["st"]) == {"match", "last_seen"}
    assert table["st"]["match"]["fired"] == {"em": [False, True, 0]}


def test_a_merge_folds_both_stages_once_and_fires_nothing_again() -> None:
    alerting, matching, subs = stages()
    alerts_table: dict[str, Any] = {}
    matches_table: dict[str, Any] = {}
    fired = [step(1, "A", "b"), step(2, "B", "b"), step(3, "C", "b"), step(1, "X", "a")]
    merge = StoryStep(fired[-1].assignment, absorbed_id="b")
    late = [step(5, "Y", "a"), step(6, "Z", "a"), step(7, "W", "a"), step(8, "V", "b")]
    sent: list[str] = []
    for steps in (fired, [merge, merge], late):
        batch = alerting.run(alerts_table, steps)
        matched = matching.run(matches_table, steps, batch.emerging, subs)
        sent += [a.event["id"] for a in batch.alerts] + [a.event["id"] for a in matched.alerts]
        alerting.commit(batch, alerts_table)
        matching.commit(matched, matches_table)
    assert sent == ["b:emerging", "em:b:emerging"]
    assert alerts_table["b"]["merged_into"] == matches_table["b"]["merged_into"] == "a"


def test_resolve_follows_chains_and_merge_pair_refuses_a_replayed_merge() -> None:
    into = {"a": "b", "b": "c"}
    assert resolve("a", into.get) == "c"
    assert merge_pair("c", "a", into.get) is None
    assert merge_pair("d", "a", into.get) == ("d", "c")
    loop = {"x": "y", "y": "x"}
    assert resolve("x", loop.get) in {"x", "y"}  # a damaged table stops, never spins
