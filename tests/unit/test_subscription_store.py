"""The subscription store's memory against the topic it follows (no broker: the writes'
offsets come from a stand-in send, the follower's records are handed in)."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

from config.settings import Settings
from streams.subscriptions.store import SubscriptionStore


def _store() -> SubscriptionStore:
    offsets = count(10)

    async def send(key: str, record: dict[str, Any] | None) -> int:
        return next(offsets)

    settings = Settings()
    return SubscriptionStore(settings.kafka, settings.topics, settings.keys, send)


def _record(name: str) -> bytes:
    return json.dumps({"id": "sub_a", "name": name}).encode()


async def test_the_follower_never_puts_an_older_record_over_this_workers_write() -> None:
    store = _store()
    await store.put({"id": "sub_a", "name": "first"})  # offset 10
    await store.put({"id": "sub_a", "name": "second"})  # offset 11
    store.follow_record(b'"sub_a"', _record("first"), 10)  # the follower, behind
    assert store.get("sub_a") == {"id": "sub_a", "name": "second"}
    store.follow_record(b'"sub_a"', _record("second"), 11)
    store.follow_record(b'"sub_a"', _record("third"), 12)  # another worker's later write
    assert store.get("sub_a") == {"id": "sub_a", "name": "third"}


async def test_a_delete_is_not_undone_by_the_follower_reading_the_record_before_it() -> None:
    store = _store()
    await store.put({"id": "sub_a", "name": "first"})  # offset 10
    await store.delete("sub_a")  # offset 11
    store.follow_record(b'"sub_a"', _record("first"), 10)
    assert store.get("sub_a") is None
    store.follow_record(b'"sub_a"', None, 11)
    assert store.values() == []


async def test_count_follows_puts_and_deletes_at_once() -> None:
    """What /metrics shows as storywatch_subscriptions{state} (counted at each scrape)."""
    store = _store()
    counts = []
    for action in (
        store.put({"id": "sub_a", "enabled": True}),
        store.put({"id": "sub_b", "enabled": True}),
        store.put({"id": "sub_b", "enabled": False}),
        store.delete("sub_a"),
    ):
        await action
        counts.append((store.count(enabled=True), store.count(enabled=False)))
    assert counts == [(1, 0), (2, 0), (1, 1), (0, 1)]


async def test_enabled_parses_each_record_and_skips_disabled_and_invalid_ones() -> None:
    """What the live matcher and replay's backtest take from the store: one parse for both."""
    from streams.subscriptions.model import Subscription, SubscriptionSpec

    store = _store()
    kept = Subscription.create(SubscriptionSpec("kept"), "alice", 1e9)
    off = Subscription.create(SubscriptionSpec("off"), "alice", 1e9)
    await store.put(kept.to_record())
    await store.put({**off.to_record(), "enabled": False})
    await store.put({"id": "sub_broken", "enabled": True})  # not a record the API writes
    assert [s.id for s in store.enabled()] == [kept.id]
