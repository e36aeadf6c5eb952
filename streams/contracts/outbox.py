"""The webhook outbox entry: what ``deliveries`` carries (keyed by its webhook-id)."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["outbox_entry", "webhook_id_of"]


def webhook_id_of(event_id: str) -> str:
    """The Standard Webhooks ``webhook-id`` of an alert: derived from the CloudEvent id (one
    per subscription, story and trigger), so a re-sent alert keeps it and receivers dedupe."""
    return "msg_" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def outbox_entry(alert: dict[str, Any], created_at: float) -> dict[str, Any]:
    """What goes on the ``deliveries`` topic (keyed by webhook-id): the intent to deliver.
    The URL, format and secret are read from the subscription at send time, so an edited
    URL applies and a deleted subscription's pending deliveries are cancelled."""
    return {
        "webhook_id": webhook_id_of(alert["id"]),
        "subscription_id": alert["data"]["subscription_id"],
        "alert": alert,
        "created_at": created_at,
    }
