"""Subscriptions in a backtest: the current subscriptions (read from the compacted
``subscriptions`` topic, as every worker reads them) matched against the replayed stories
with the live matcher. Their alerts go to the run's alerts.jsonl; nothing is delivered."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.alerts import EmergingRule, EmergingState, iso_time
from streams.engine.clustering import Assignment
from streams.replay.reading import TopicReader
from streams.stages.merges import absorb_emerging
from streams.subscriptions.alerts import match_alert
from streams.subscriptions.matching import Matcher, SemanticIndex, StoryMatchState, StoryUpdate
from streams.subscriptions.model import Subscription
from streams.time_ranges import TimeRange

__all__ = ["SubscriptionReplay", "read_subscriptions"]

logger = logging.getLogger(__name__)
Encode = Callable[[list[str]], npt.NDArray[np.float32]]
# Why 20: as the live stage (agents/subscriptions.py): sources listed in an alert.
_SUMMARY_SOURCES = 20


async def read_subscriptions(reader: TopicReader, topic: str) -> list[Subscription]:
    """The enabled subscriptions now: the latest record per id, tombstones deleting."""
    if not await reader.exists(topic):
        return []
    plan = await reader.plan(topic, TimeRange(None, None))
    latest: dict[str, dict[str, Any] | None] = {}
    async for record in reader.records(plan):
        try:
            key = json.loads(record.key) if record.key else None
            value = json.loads(record.value) if record.value is not None else None
        except (ValueError, RecursionError):
            continue
        if key is not None and (value is None or isinstance(value, dict)):
            latest[str(key)] = value
    found = []
    for value in latest.values():
        if value is None:
            continue
        try:
            subscription = Subscription.from_record(value)
        except Exception:  # noqa: BLE001 - a record the API did not write: skipped, as live
            logger.warning("ignoring an invalid subscription record")
            continue
        if subscription.enabled:
            found.append(subscription)
    return found


@dataclass
class SubscriptionReplay:
    """The live matching stage over the replay's assignments, in memory."""

    subscriptions: list[Subscription]
    emerging: EmergingRule
    encode: Encode | None  # the model, only when a subscription has a semantic query
    source: str
    matcher: Matcher = field(init=False)
    semantic: SemanticIndex = field(init=False)
    by_id: dict[str, Subscription] = field(init=False)
    fired: Counter[str] = field(default_factory=Counter)  # subscription id -> alerts
    _states: dict[str, tuple[StoryMatchState, EmergingState]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matcher = Matcher(self.subscriptions)
        self.by_id = {s.id: s for s in self.subscriptions}
        queried = [s for s in self.subscriptions if s.filter.query is not None]
        if queried and self.encode is not None:
            encode = self.encode
            self.semantic = SemanticIndex.build(
                self.subscriptions, lambda texts: np.asarray(encode(list(texts)))
            )
        else:
            self.semantic = SemanticIndex([], np.zeros((0, 0)))

    def follow_merge(self, survivor_id: str, absorbed_id: str) -> None:
        """Fold the absorbed story's matching state into the survivor's (as live)."""
        absorbed = self._states.pop(absorbed_id, None)
        if absorbed is None:
            return
        state, burst = self._states.setdefault(survivor_id, (StoryMatchState(), EmergingState()))
        state.absorb(absorbed[0])
        absorb_emerging(burst, absorbed[1])

    def observe(
        self, assignment: Assignment, text: str, centroid: npt.NDArray[np.float32] | None
    ) -> list[dict[str, Any]]:
        """The subscription alerts this story event fires."""
        scores: dict[str, float] = {}
        if self.semantic.ids and centroid is not None:
            scores = self.semantic.hits(centroid[np.newaxis, :])[0]
        state, burst = self._states.setdefault(
            assignment.story_id, (StoryMatchState(), EmergingState())
        )
        self.emerging.observe(burst, assignment)
        update = StoryUpdate.from_assignment(assignment, text=text, emerging=burst.fired)
        alerts = []
        for match in self.matcher.observe(update, state, scores):
            subscription = self.by_id[match.subscription_id]
            summary = {
                "story_id": assignment.story_id,
                "headline": assignment.headline,
                "size": assignment.story_size,
                "source_count": assignment.source_count,
                "sources": list(state.sources.values())[:_SUMMARY_SOURCES],
                "keywords": list(assignment.keywords or []),
                "sample_urls": list(burst.urls),
                "first_seen": iso_time(assignment.first_seen),
                "last_seen": iso_time(assignment.last_seen),
            }
            alerts.append(
                match_alert(
                    match, subscription, summary, source=self.source, time=assignment.event_time
                )
            )
            self.fired[subscription.id] += 1
        return alerts
