"""The readiness reasons and the consumer-lag arithmetic, on stand-ins for Faust's app and
consumer (pure logic; tests/integration/test_observability.py runs both in a real worker)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.kafka.consumer_lag import ConsumerLag
from streams.metrics import PipelineMetrics
from streams.web.health import Readiness

ARTICLES0, ARTICLES1, EMBEDDED = TP("articles", 0), TP("articles", 1), TP("articles-embedded", 0)
CHANGELOG = TP("storywatch-story-state-changelog", 0)


@dataclass
class FakeConsumer:
    assigned: set[TP]
    ends: dict[TP, int]
    committed: dict[TP, int | None]
    starts: dict[TP, int] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.starts.get(tp, 0) for tp in partitions}

    @property
    def _committed_offset(self) -> dict[TP, int | None]:
        return self.committed


def fake_app(consumer: Any = None, **state: Any) -> Any:
    recovered = asyncio.Event()
    if state.pop("recovered", True):
        recovered.set()
    defaults = {
        "started": True,
        "should_stop": False,
        "crashed": False,
        "rebalancing": False,
        "in_recovery": False,
    }
    return SimpleNamespace(
        consumer=consumer,
        tables=SimpleNamespace(
            recovery=SimpleNamespace(completed=recovered),
            changelog_topics={CHANGELOG.topic},
        ),
        **{**defaults, **state},
    )


def lag_values(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in registry.collect()
        if family.name == "storywatch_consumer_lag"
        for s in family.samples
    }


async def test_lag_is_end_offset_minus_committed_for_consumed_partitions() -> None:
    registry = CollectorRegistry()
    consumer = FakeConsumer(
        assigned={ARTICLES0, ARTICLES1, EMBEDDED, CHANGELOG},
        ends={ARTICLES0: 120, ARTICLES1: 40, EMBEDDED: 95, CHANGELOG: 500},
        committed={ARTICLES0: 100, EMBEDDED: 95},  # articles/1: never committed
        starts={ARTICLES1: 10},  # retention removed its first 10 records
    )
    lag = ConsumerLag(fake_app(consumer), PipelineMetrics(registry).consumer_lag)
    await lag.refresh()
    assert lag_values(registry) == {
        ("articles", "0"): 20.0,
        ("articles", "1"): 30.0,
        ("articles-embedded", "0"): 0.0,
    }
    # a rebalance takes articles/1 away: its series goes, the others update
    consumer.assigned = {ARTICLES0, EMBEDDED}
    consumer.committed[ARTICLES0] = 120
    await lag.refresh()
    assert lag_values(registry) == {("articles", "0"): 0.0, ("articles-embedded", "0"): 0.0}


async def test_lag_waits_for_recovery_and_rebalances() -> None:
    consumer = FakeConsumer(assigned={ARTICLES0}, ends={ARTICLES0: 5}, committed={})
    for state in ({"recovered": False}, {"rebalancing": True}, {"in_recovery": True}):
        registry = CollectorRegistry()
        lag = ConsumerLag(fake_app(consumer, **state), PipelineMetrics(registry).consumer_lag)
        await lag.refresh()
        assert lag_values(registry) == {}, state


@dataclass
class Part:
    is_ready: bool


def test_ready_only_when_every_condition_holds() -> None:
    assert Readiness(fake_app(), ("subscriptions", Part(True))).reasons() == []
    cases = {
        "tables are recovering from their changelogs": {"recovered": False},
        "rebalancing": {"rebalancing": True},
        "recovering after a rebalance": {"in_recovery": True},
        "starting": {"started": False},
        "stopping": {"should_stop": True},
    }
    for expected, state in cases.items():
        reasons = Readiness(fake_app(**state), ("subscriptions", Part(True))).reasons()
        assert len(reasons) == 1 and expected in reasons[0], (state, reasons)
    reasons = Readiness(fake_app(), ("the subscriptions topic", Part(False))).reasons()
    assert reasons == ["the subscriptions topic not loaded yet: wait"]
