"""One dead-letter record shape, and one sender, for every stage of the pipeline.

A dead letter says why (``reason``, a short label for metrics, and ``error``, which says
what to do), which ``stage`` refused the record, where it came from (topic, partition,
offset, timestamp, key) and the original bytes: base64, and as text too when short and
UTF-8. Past the size limit the copy is cut and flagged ``truncated``; the whole record
stays in its source topic at the offset given.

``articles-dlq`` holds that shape. ``alerts-dlq`` holds the same shape (stage
``deliveries``, the original bytes those of the outbox entry) plus the delivery's fields:
``webhook_id``, ``subscription_id``, ``alert_id``, ``attempts`` and ``status`` (the last
HTTP status, None when no answer came); see :func:`delivery_dead_letter`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from prometheus_client import Counter

__all__ = [
    "DELIVERY_STAGE",
    "DeadLetters",
    "MessageCoordinates",
    "dead_letter_record",
    "delivery_dead_letter",
]

logger = logging.getLogger(__name__)

# Why 64 KiB: a readable copy for people browsing the DLQ; bigger records keep only base64.
_INLINE_TEXT_BYTES = 64 * 1024
# Why 64 KiB: room for the reason, error text and Kafka coordinates around the copy.
_ENVELOPE_BYTES = 64 * 1024
# Why 4 KiB: an error text (a repr of a poisoned value) must not outgrow the record itself.
_ERROR_CHARS = 4096


class MessageCoordinates(Protocol):
    """Where a record was read: what Faust's ``Message`` (and a test's stand-in) gives."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None


#: The ``stage`` of an alerts-dlq dead letter: the webhook delivery of an outbox entry.
DELIVERY_STAGE = "deliveries"


class _Sendable(Protocol):
    async def send(self, *, key: Any = None, value: Any = None) -> Awaitable[Any]: ...


def dead_letter_record(
    *,
    reason: str,
    error: str,
    stage: str,
    message: MessageCoordinates | None,
    value: bytes | None,
    max_bytes: int,
) -> dict[str, Any]:
    """The DLQ record of one refused input (``message`` None: no Kafka coordinates known)."""
    raw = value or b""
    text: str | None = None
    if len(raw) <= _INLINE_TEXT_BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            text = raw.decode("utf-8")
    keep = (max_bytes - _ENVELOPE_BYTES) * 3 // 4
    key = message.key if message is not None else None
    return {
        "reason": reason,
        "error": error[:_ERROR_CHARS],
        "stage": stage,
        "topic": message.topic if message is not None else None,
        "partition": message.partition if message is not None else None,
        "offset": message.offset if message is not None else None,
        "timestamp": message.timestamp if message is not None else None,
        "key": base64.b64encode(key).decode() if isinstance(key, bytes) else None,
        "value_b64": base64.b64encode(raw[:keep]).decode(),
        "value_text": text,
        "truncated": len(raw) > keep,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def delivery_dead_letter(
    *,
    reason: str,
    error: str,
    entry: Any,
    message: MessageCoordinates | None,
    value: bytes | None,
    max_bytes: int,
    attempts: int,
    status: int | None,
) -> dict[str, Any]:
    """The alerts-dlq record of one outbox entry: :func:`dead_letter_record` of the entry's
    record on ``deliveries`` (``value``: its bytes) plus the delivery's fields. ``entry`` is
    the decoded entry, possibly malformed (a delivery that crashed on it): each field it
    lacks is None. Re-publishing ``value_text`` (or the decoded ``value_b64``) to the outbox,
    keyed by ``webhook_id``, delivers it again."""
    fields = entry if isinstance(entry, dict) else {}
    alert = fields.get("alert")
    record = dead_letter_record(
        reason=reason,
        error=error,
        stage=DELIVERY_STAGE,
        message=message,
        value=value,
        max_bytes=max_bytes,
    )
    webhook_id = fields.get("webhook_id")
    if record["key"] is None and isinstance(webhook_id, str):
        record["key"] = base64.b64encode(webhook_id.encode()).decode()  # the outbox's key
    return {
        **record,
        "webhook_id": webhook_id if isinstance(webhook_id, str) else None,
        "subscription_id": _text_or_none(fields.get("subscription_id")),
        "alert_id": _text_or_none(alert.get("id")) if isinstance(alert, dict) else None,
        "attempts": attempts,
        "status": status,
    }


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class DeadLetters:
    """Sends dead letters to the DLQ topic and counts them by reason."""

    def __init__(self, topic: _Sendable, counter: Counter, max_bytes: int) -> None:
        self._topic = topic
        self._counter = counter
        self._max_bytes = max_bytes

    async def send(
        self,
        *,
        reason: str,
        error: str,
        stage: str,
        message: MessageCoordinates | None,
        value: bytes | None,
    ) -> Awaitable[Any]:
        """Queue the dead letter; the result resolves when the broker has it."""
        logger.warning("dead letter from %s: %s: %s", stage, reason, error[:200])
        self._counter.labels(reason).inc()
        record = dead_letter_record(
            reason=reason,
            error=error,
            stage=stage,
            message=message,
            value=value,
            max_bytes=self._max_bytes,
        )
        key = message.key if message is not None else None
        return await self._topic.send(key=key, value=record)
