"""The webhook delivery service: sign, send, retry with backoff, then record or park.

An outbox entry (on ``deliveries``, keyed by webhook-id) is done with only once its delivery
is final: delivered (a receipt is written) or parked on ``alerts-dlq`` after the last retry.
A restarted worker re-reads the entries it had not finished; the receipts table skips
those already delivered, so a receiver sees each webhook-id once (or, when a worker dies
between the receiver's 2xx and the receipt, twice with the same webhook-id, which
Standard Webhooks receivers drop).

Each delivery runs as its own task (the agent, ``agents/deliveries.py``, starts them): a slow
or dead receiver holds up only its own deliveries. At most ``STORYWATCH_WEBHOOK_CONCURRENCY``
run at once, at most ``_PER_HOST`` of them to one host; past ``_MAX_PENDING`` unfinished
entries the agent stops taking more (back-pressure on the topic, nothing held in memory
without bound). One receiver holds at most ``STORYWATCH_WEBHOOK_RECEIVER_BACKLOG`` of those
entries: past it, its new entries are parked on ``alerts-dlq`` at once
(``receiver_backlog_full``), so a dead receiver retrying for minutes cannot fill the shared
pool and stall every other receiver.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from yarl import URL

from config.groups import TopicSettings, WebhookSettings
from streams.contracts.dead_letters import MessageCoordinates, delivery_dead_letter
from streams.metrics import PipelineMetrics
from streams.subscriptions.model import Subscription
from streams.subscriptions.redaction import RedactingFilter, redact_text
from streams.subscriptions.sender import Attempt, RetryPolicy, WebhookSender
from streams.subscriptions.webhooks import render_body, webhook_headers

__all__ = [
    "PER_RECEIVER",
    "DeliveryService",
    "Park",
    "Position",
    "already_final",
    "redact_logs",
]

logger = logging.getLogger(__name__)

# Why 4 per owner and receiver (scheme, host, port): an owner's deliveries to one receiver
# get a few parallel requests, never a flood; a hanging one ties up 4 connections, not the
# sender, and not the other owners' deliveries to the same receiver.
_PER_HOST = 4
# Why 32: connections to one receiver (scheme, host, port) across all owners at most; a
# receiver shared by many owners (Slack, a team's hub) gets their deliveries in parallel,
# while one owner holds at most _PER_HOST of them.
PER_RECEIVER = 32
# Why 10,000: unfinished deliveries kept in memory at most (a few KiB each); past it the
# outbox waits in Kafka.
_MAX_PENDING = 10_000
# Why 50: the recent attempts `GET /api/subscriptions/{id}/deliveries` shows per subscription.
_LOG_ENTRIES = 50
_FINAL = ("delivered", "parked", "cancelled")

# An outbox record's (partition, offset).
Position = tuple[int, int]
# Sends one dead letter to alerts-dlq (key: the webhook-id, value); returns once the broker
# has it.
Park = Callable[[Any, dict[str, Any]], Awaitable[None]]


class _Subscriptions(Protocol):
    """What the service reads of the subscription store."""

    async def ready(self) -> None: ...

    def get(self, subscription_id: str) -> dict[str, Any] | None: ...


def already_final(receipt: dict[str, Any] | None, position: Position | None) -> bool:
    """Whether the outbox record at ``position`` is done with: its webhook-id was delivered or
    cancelled, or parked from this record or an earlier one (a replay after a restart). A
    parked entry re-published from alerts-dlq is a later record: it is delivered again."""
    if receipt is None or receipt.get("outcome") not in _FINAL:
        return False
    parked_at = receipt.get("position")
    if receipt["outcome"] != "parked" or parked_at is None or position is None:
        return True
    partition, offset = parked_at
    return position[0] == partition and position[1] <= offset


def redact_logs() -> None:
    """Every log line of this worker leaves with the URLs in it redacted (a webhook URL's
    token in an error text or a traceback): a filter on each handler of the root logger,
    which Faust has set up by the time the agent starts."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


class DeliveryService:
    """The running deliveries of one worker: limits, the sender, the retry policy, the
    receipts and the recent-deliveries log."""

    def __init__(
        self,
        sender: WebhookSender,
        *,
        webhooks: WebhookSettings,
        topics: TopicSettings,
        metrics: PipelineMetrics,
        receipts: MutableMapping[str, Any],
        delivery_log: MutableMapping[str, Any],
        subscriptions: _Subscriptions,
        park: Park,
    ) -> None:
        self.sender = sender
        self.webhooks = webhooks
        self.topics = topics
        self.metrics = metrics
        self.receipts = receipts
        self.delivery_log = delivery_log
        self.subscriptions = subscriptions
        self._park_record = park
        self.slots = asyncio.Semaphore(webhooks.webhook_concurrency)
        self.pending = asyncio.Semaphore(_MAX_PENDING)
        # (owner, receiver) -> its connection slots
        self.hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(_PER_HOST)
        )
        self.policy = RetryPolicy(
            max_attempts=webhooks.webhook_max_attempts,
            base_s=webhooks.webhook_retry_base_s,
            max_s=webhooks.webhook_retry_max_s,
        )
        self.rng = random.Random()  # noqa: S311 - jitter, not cryptography
        # "owner receiver" -> that owner's deliveries to the receiver (scheme, host, port)
        # sending or waiting to retry: one owner's dead receiver fills its own backlog only.
        self.backlog: Counter[str] = Counter()
        # webhook-id -> its delivery in progress. A replayed stage re-sends an outbox entry,
        # so two entries of one alert can be in flight at once: the second waits for the
        # first and then finds its receipt (without this, both were delivered).
        self.inflight: dict[str, asyncio.Future[None]] = {}

    async def admit(self) -> None:
        """Wait for room for one more unfinished entry (back-pressure on the outbox)."""
        await self.pending.acquire()
        self.metrics.outbox_depth.inc()

    def release(self) -> None:
        """One admitted entry is finished with (final, or left for a restart)."""
        self.pending.release()
        self.metrics.outbox_depth.dec()

    async def settle(self, key: Any, value: Any, message: MessageCoordinates | None) -> bool:
        """Deliver one outbox record; whether it is done with (acknowledge it). An entry
        whose delivery raises (a malformed entry, or a bug) is parked with the error, so one
        bad entry neither stalls the outbox's committed offset nor is lost. False only when
        even parking failed: the entry is read again after a restart."""
        try:
            try:
                await self.run(value, message)
            except Exception as exc:  # a bug or a malformed entry: parked
                logger.exception("delivering %s failed unexpectedly; parking it", key)
                await self._park_broken(key, value, message, exc)
        except Exception:
            # Not even parked (the broker refused it): not acked, so the entry is read again
            # after a restart. Say so loudly.
            logger.exception(
                "outbox entry %s could not be parked on %s; it is retried after a restart",
                key,
                self.topics.topic_alerts_dlq,
            )
            return False
        return True

    async def run(self, entry: dict[str, Any], message: MessageCoordinates | None = None) -> None:
        webhook_id = entry["webhook_id"]
        while webhook_id in self.inflight:
            await asyncio.shield(self.inflight[webhook_id])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inflight[webhook_id] = done
        try:
            await self._deliver(entry, message)
        finally:
            del self.inflight[webhook_id]
            done.set_result(None)

    def _log(self, subscription_id: str, entry: dict[str, Any], row: dict[str, Any]) -> None:
        """Keep the delivery's latest state in its subscription's recent-deliveries list."""
        alert = entry["alert"]
        row = {
            "webhook_id": entry["webhook_id"],
            "trigger": alert["data"].get("trigger"),
            "story_id": alert.get("subject"),
            "alert_id": alert["id"],
            **row,
            "at": time.time(),
        }
        recent = self.delivery_log.get(subscription_id) or []
        kept = [r for r in recent if r["webhook_id"] != row["webhook_id"]]
        self.delivery_log[subscription_id] = [*kept, row][-_LOG_ENTRIES:]

    async def _dead_letter(
        self,
        entry: Any,
        message: MessageCoordinates | None,
        reason: str,
        error: str,
        *,
        status: int | None,
        attempts: int,
        key: Any = None,
    ) -> None:
        """Park ``entry`` on alerts-dlq with why (logged too); returns once the broker has
        it. URLs in the error are redacted (their tokens stay out of the log and the dead
        letter). The record: the articles-dlq shape (the outbox record's coordinates and
        bytes) plus the delivery's fields (streams.contracts.dead_letters)."""
        error = redact_text(error)
        fields = entry if isinstance(entry, dict) else {}
        logger.warning(
            "webhook %s to subscription %s parked on %s: %s",
            fields.get("webhook_id"),
            fields.get("subscription_id"),
            self.topics.topic_alerts_dlq,
            error,
        )
        record = delivery_dead_letter(
            reason=reason,
            error=error,
            entry=entry,
            message=message,
            value=_outbox_bytes(entry, message),
            max_bytes=self.topics.dlq_max_message_bytes,
            attempts=attempts,
            status=status,
        )
        webhook_id = fields.get("webhook_id")
        await self._park_record(webhook_id if isinstance(webhook_id, str) else key, record)

    async def _deliver(self, entry: dict[str, Any], message: MessageCoordinates | None) -> None:
        webhook_id = entry["webhook_id"]
        position = _position(message)
        if already_final(self.receipts.get(webhook_id), position):
            return  # delivered (or parked) before a restart: never again
        await self.subscriptions.ready()
        record = self.subscriptions.get(entry["subscription_id"])
        subscription = Subscription.from_record(record) if record else None
        if subscription is None or subscription.webhook is None:
            self._finish(entry, "cancelled", None, "the subscription or its webhook was removed")
            return
        body = render_body(entry["alert"], subscription.webhook.format)
        url = subscription.webhook.url
        if not subscription.signing_secrets(time.time()):
            await self._dead_letter(
                entry,
                message,
                "secret_unreadable",
                "the subscription's webhook secret does not decrypt with this worker's "
                "STORYWATCH_SECRET_KEY: give every worker the same key, or rotate the secret "
                "(POST /api/subscriptions/{id}/rotate-secret), then re-publish this entry",
                status=None,
                attempts=0,
            )
            self._finish(entry, "parked", None, "secret_unreadable", position=position)
            return
        # One owner's deliveries to one receiver (scheme, host and port).
        host = f"{subscription.owner} {URL(url).origin()}"
        if self.backlog[host] >= self.webhooks.webhook_receiver_backlog:
            await self._park_backlog(entry, message, subscription, host)
            return
        self.backlog[host] += 1
        try:
            await self._attempts(entry, subscription, url, body, host, message=message)
        finally:
            self.backlog[host] -= 1
            if not self.backlog[host]:
                del self.backlog[host]

    async def _attempts(
        self,
        entry: dict[str, Any],
        subscription: Subscription,
        url: str,
        body: bytes,
        host: str,
        *,
        message: MessageCoordinates | None,
    ) -> None:
        """Send with retries until delivered, failed or out of attempts (then parked)."""
        webhook_id = entry["webhook_id"]
        attempt: Attempt | None = None
        number = 0
        for number in range(1, self.policy.max_attempts + 1):
            now = time.time()
            headers = webhook_headers(webhook_id, subscription.signing_secrets(now), body, now)
            async with self.hosts[host], self.slots:
                attempt = await self.sender.send(url, body, headers)
            self.metrics.deliveries.labels(attempt.outcome).inc()
            self._log(subscription.id, entry, self._row(attempt, number))
            if attempt.outcome == "delivered":
                self.metrics.delivery_latency.observe(max(0.0, time.time() - entry["created_at"]))
                self._finish(entry, "delivered", attempt, None, attempts=number)
                return
            if attempt.outcome == "failed" or self.policy.exhausted(number):
                break
            self.metrics.delivery_retries.inc()
            await asyncio.sleep(self.policy.delay(number, attempt.retry_after_s, self.rng))
        await self._park(entry, subscription, attempt, message, attempts=number)

    def _row(self, attempt: Attempt, number: int) -> dict[str, Any]:
        return {
            "outcome": attempt.outcome,
            "status": attempt.status,
            "error": attempt.error,
            "attempts": number,
            "duration_s": round(attempt.duration_s, 4),
        }

    async def _park(
        self,
        entry: dict[str, Any],
        subscription: Subscription,
        attempt: Attempt | None,
        message: MessageCoordinates | None,
        *,
        attempts: int,
    ) -> None:
        error = attempt.error if attempt else "no attempt was made"
        await self._dead_letter(
            entry,
            message,
            "delivery_failed",
            f"{error}; fix the receiver, then resend with "
            "`storywatch subscriptions test` or re-publish this entry to the outbox",
            status=attempt.status if attempt else None,
            attempts=attempts,
        )
        self._finish(entry, "parked", attempt, error, position=_position(message))

    async def _park_backlog(
        self,
        entry: dict[str, Any],
        message: MessageCoordinates | None,
        subscription: Subscription,
        host: str,
    ) -> None:
        """Park an entry of a receiver already holding its backlog cap, without trying it.
        No receipt is written: the entry re-sent from alerts-dlq to the outbox is delivered."""
        owner, _, receiver = host.partition(" ")
        error = (
            f"receiver_backlog_full: {owner}'s deliveries to {receiver} hold "
            f"{self.backlog[host]} waiting (the cap per owner and receiver is "
            "STORYWATCH_WEBHOOK_RECEIVER_BACKLOG); fix the receiver, then re-send this "
            f"entry from {self.topics.topic_alerts_dlq} to the "
            f"{self.topics.topic_deliveries} topic"
        )
        await self._dead_letter(
            entry, message, "receiver_backlog_full", error, status=None, attempts=0
        )
        self.metrics.deliveries.labels("backlog_full").inc()
        self._log(subscription.id, entry, {"outcome": "backlog_full", "error": error})

    def _finish(
        self,
        entry: dict[str, Any],
        outcome: str,
        attempt: Attempt | None,
        error: str | None,
        *,
        attempts: int = 0,
        position: Position | None = None,
    ) -> None:
        if outcome != "delivered":
            self.metrics.deliveries.labels(outcome).inc()
        self.receipts[entry["webhook_id"]] = {
            "outcome": outcome,
            "status": attempt.status if attempt else None,
            "error": error,
            "attempts": attempts,
            "at": time.time(),
            "position": list(position) if position else None,
        }
        if outcome != "delivered":
            self._log(entry["subscription_id"], entry, {"outcome": outcome, "error": error})

    async def _park_broken(
        self, key: Any, value: Any, message: MessageCoordinates | None, exc: Exception
    ) -> None:
        """An entry whose delivery raised: parked with the error, its receipt says parked."""
        await self._dead_letter(
            value,
            message,
            "delivery_crashed",
            f"{type(exc).__name__}: {exc}; report it with this record, then "
            "re-publish the entry to the outbox once fixed",
            status=None,
            attempts=0,
            key=key,
        )
        webhook_id = value.get("webhook_id") if isinstance(value, dict) else None
        if isinstance(webhook_id, str):
            self.receipts[webhook_id] = {
                "outcome": "parked",
                "status": None,
                "error": redact_text(f"{type(exc).__name__}: {exc}"),
                "attempts": 0,
                "at": time.time(),
                "position": _list_or_none(_position(message)),
            }
        self.metrics.deliveries.labels("parked").inc()


def _position(message: MessageCoordinates | None) -> Position | None:
    return None if message is None else (message.partition, message.offset)


def _list_or_none(position: Position | None) -> list[int] | None:
    return list(position) if position else None


def _outbox_bytes(entry: Any, message: MessageCoordinates | None) -> bytes:
    """The outbox record's bytes as read (a test's stand-in message holds the decoded value:
    then the entry as the outbox's JSON codec writes it)."""
    raw = getattr(message, "value", None)
    if isinstance(raw, bytes):
        return raw
    try:
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return repr(entry).encode()
