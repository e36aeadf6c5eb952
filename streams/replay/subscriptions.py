"""Subscriptions in a backtest: the current subscriptions (read from the compacted
``subscriptions`` topic, as every worker reads them) matched against the replayed stories
with the live match stage. Their alerts go to the run's alerts.jsonl; nothing is delivered."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.replay.reading import TopicReader
from streams.stages.matching import Subscriptions
from streams.subscriptions.model import Subscription
from streams.time_ranges import TimeRange

__all__ = ["SubscriptionReplay", "read_subscriptions"]

logger = logging.getLogger(__name__)
Encode = Callable[[list[str]], npt.NDArray[np.float32]]


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
    """The current subscriptions, as the match stage (streams/stages/matching.py) takes
    them, and what each fired in the run."""

    subscriptions: list[Subscription]
    current: Subscriptions
    fired: Counter[str] = field(default_factory=Counter)  # subscription id -> alerts

    @classmethod
    def build(cls, subscriptions: list[Subscription], encode: Encode | None) -> SubscriptionReplay:
        """``encode``: the model, only when a subscription has a semantic query."""
        return cls(subscriptions, Subscriptions.build(subscriptions, encode))
