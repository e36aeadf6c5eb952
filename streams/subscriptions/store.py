"""Every subscription on every worker: the compacted ``subscriptions`` topic, read from its
start by a consumer of each worker's own (no group: every worker reads every partition).

Why not a Faust GlobalTable: with Faust 0.15.3 a GlobalTable did not reach the other worker
of a group (a subscription created through one worker's API stayed unknown to the other,
tests/integration/test_faults.py), and one on a changelog topic of our own name hung the
partition assignor. This is the same idea in a few lines we can test: the topic is the
storage (compacted: the latest record per id, a tombstone deletes), memory is a cache.

Webhook secrets are sealed on the topic and open in memory (streams/subscriptions/sealing.py):
``put`` seals before it writes, the follower opens what it reads; a record from before
encryption loads as it is and is sealed on its next write.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from config.exceptions import StorywatchError
from config.groups import KafkaSettings, KeySettings, TopicSettings
from streams.exceptions import TopicNotFound
from streams.kafka.follower import READY_TIMEOUT_S, Message, TopicFollower, read_to_end
from streams.subscriptions.errors import SecretUnreadable
from streams.subscriptions.model import Subscription
from streams.subscriptions.sealing import SecretBox

__all__ = ["SubscriptionStore", "SubscriptionStoreNotReady"]

logger = logging.getLogger(__name__)

Record = dict[str, Any]
# Writes one record (None: a tombstone), waits for the broker, answers the record's offset.
Send = Callable[[str, Record | None], Awaitable[int]]

# Why 1 s: a subscription made on another worker is matched here within about this.
_POLL_MS = 1000


class SubscriptionStoreNotReady(StorywatchError):
    """The worker has not read the subscriptions topic to its end yet."""


class SubscriptionStore:
    """Reads the subscriptions topic into memory; writes go to the topic and into memory."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        keys: KeySettings,
        send: Send,
        box: SecretBox | None = None,
    ) -> None:
        """``keys`` seal the webhook secrets (``box``, if given, instead: a test's key)."""
        self.kafka = kafka
        self.topic = topics.topic_subscriptions
        self._send = send
        self._box = box or SecretBox.from_settings(keys)
        self._records: dict[str, Record] = {}
        # Offset of this worker's latest write per id: the follower, reading the topic behind
        # it, must not put an older record of that id back over it (a PUT right after a POST
        # read back the POST's version until the follower caught up).
        self._written_at: dict[str, int] = {}
        self.version = 0  # bumped on every change: readers rebuild what they derive
        self.follower = TopicFollower(
            kafka,
            [self.topic],
            self._follow,
            poll_ms=_POLL_MS,
            name="subscriptions",
            on_caught_up=self._caught_up,
        )

    @property
    def is_ready(self) -> bool:
        """Whether the topic has been read to its end once (the worker's readiness)."""
        return self.follower.caught_up.is_set()

    async def ready(self) -> None:
        if not await self.follower.wait_caught_up():
            raise SubscriptionStoreNotReady(
                f"the subscriptions topic {self.topic!r} was not read "
                f"within {READY_TIMEOUT_S:.0f} s: check the broker at {self.kafka.bootstrap}"
            )

    @classmethod
    async def read_once(
        cls, kafka: KafkaSettings, topics: TopicSettings, keys: KeySettings
    ) -> SubscriptionStore:
        """The topic as it is now, read to its end once (a command's look: replay matches
        against it and writes nothing); a missing topic is an empty store."""
        store = cls(kafka, topics, keys, _read_only)
        with contextlib.suppress(TopicNotFound):  # no subscriptions were ever made
            await read_to_end(kafka, [store.topic], store._follow)
        return store

    def values(self) -> list[Record]:
        return list(self._records.values())

    def enabled(self) -> list[Subscription]:
        """The enabled subscriptions; a record the API did not write is skipped, loudly."""
        found = []
        for record in self._records.values():
            try:
                subscription = Subscription.from_record(record)
            except Exception:
                logger.exception("ignoring an invalid subscription record")
                continue
            if subscription.enabled:
                found.append(subscription)
        return found

    def get(self, subscription_id: str) -> Record | None:
        return self._records.get(subscription_id)

    def count(self, *, enabled: bool) -> int:
        """How many stored subscriptions are enabled (or disabled), as of now."""
        return sum(1 for record in self._records.values() if bool(record.get("enabled")) == enabled)

    async def put(self, record: Record) -> None:
        """Write and wait for the broker's acknowledgement; then serve it here at once."""
        key = str(record["id"])
        self._written_at[key] = await self._send(key, self._box.seal_record(record))
        self._apply(key, record)

    async def delete(self, subscription_id: str) -> None:
        # A tombstone: compaction drops the id.
        self._written_at[subscription_id] = await self._send(subscription_id, None)
        self._apply(subscription_id, None)

    def _apply(self, key: str, record: Record | None) -> None:
        if record is None:
            self._records.pop(key, None)
        else:
            self._records[key] = record
        self.version += 1

    async def run(self) -> None:
        """Read the topic from its start, then follow it, for as long as the worker runs
        (streams/kafka/follower.py: through broker restarts)."""
        await self.follower.run()

    def _follow(self, message: Message) -> None:
        self.follow_record(message.key, message.value, message.offset)

    def _caught_up(self) -> None:
        logger.info("read %d subscriptions", len(self._records))

    def follow_record(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """Apply one record read from the topic at ``offset`` (what the follower does)."""
        if key is None:
            return
        try:
            subscription_id = str(json.loads(key))
            record = json.loads(value) if value is not None else None
        except (ValueError, RecursionError):
            logger.warning("skipping an undecodable record on the subscriptions topic")
            return
        if record is not None and not isinstance(record, dict):
            return
        if record is not None:
            record = self._opened(subscription_id, record)
        written_at = self._written_at.get(subscription_id)
        if written_at is not None:
            if offset < written_at:
                return  # older than what this worker wrote and already serves
            del self._written_at[subscription_id]  # caught up with its own write
        self._apply(subscription_id, record)

    def _opened(self, subscription_id: str, record: Record) -> Record:
        """``record`` with its secrets decrypted; one that does not decrypt (another key) is
        kept without them (listed and matched; its deliveries are parked as unsigned)."""
        try:
            return self._box.open_record(record)
        except SecretUnreadable as exc:
            logger.error("%s", exc)
            kept = {k: v for k, v in record.items() if not k.endswith("_sealed")}
            return {**kept, "secret": "", "secret_unreadable": True}


async def _read_only(key: str, record: Record | None) -> int:
    raise StorywatchError(
        f"this copy of the subscriptions (read once, for a command) cannot write {key!r}: "
        "change subscriptions through a worker's API"
    )
