"""Subscriptions in a backtest: the current subscriptions (read once from the compacted
``subscriptions`` topic by the store every worker keeps, streams/subscriptions/store.py)
matched against the replayed stories with the live match stage. Their alerts go to the
run's alerts.jsonl; nothing is delivered."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streams.stages.matching import Subscriptions
from streams.subscriptions.model import Subscription

__all__ = ["SubscriptionReplay"]

logger = logging.getLogger(__name__)
Encode = Callable[[list[str]], npt.NDArray[np.float32]]


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
