"""SubscriptionStore's in-memory view: what the API writes is counted at once."""

from __future__ import annotations

import asyncio
from typing import Any

from config.settings import Settings
from streams.subscription_store import SubscriptionStore


def test_count_follows_puts_and_deletes() -> None:
    sent: list[tuple[str, Any]] = []

    async def send(key: str, record: dict[str, Any] | None) -> None:
        sent.append((key, record))

    store = SubscriptionStore(Settings(), send)

    async def scenario() -> list[tuple[int, int]]:
        counts = []
        for action in (
            store.put({"id": "a", "enabled": True}),
            store.put({"id": "b", "enabled": True}),
            store.put({"id": "b", "enabled": False}),
            store.delete("a"),
        ):
            await action
            counts.append((store.count(enabled=True), store.count(enabled=False)))
        return counts

    assert asyncio.run(scenario()) == [(1, 0), (2, 0), (1, 1), (0, 1)]
    assert [key for key, _ in sent] == ["a", "b", "b", "a"]
