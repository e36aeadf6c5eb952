"""The alert a subscription match makes (a CloudEvent) and its webhook outbox entry."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from streams.engine.alerts import cloud_event
from streams.subscriptions.matching import Match
from streams.subscriptions.model import Subscription

__all__ = [
    "SUBSCRIPTION_EVENT_PREFIX",
    "StorySummary",
    "match_alert",
    "outbox_entry",
    "test_alert",
    "webhook_id_of",
]

SUBSCRIPTION_EVENT_PREFIX = "io.storywatch.subscription."

StorySummary = dict[str, Any]  # story_id, headline, size, source_count, sources, keywords, ...


def webhook_id_of(event_id: str) -> str:
    """The Standard Webhooks ``webhook-id`` of an alert: derived from the CloudEvent id (one
    per subscription, story and trigger), so a re-sent alert keeps it and receivers dedupe."""
    return "msg_" + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def match_alert(
    match: Match, subscription: Subscription, story: StorySummary, *, source: str, time: float
) -> dict[str, Any]:
    """The CloudEvent of one match; its id is the match's dedup key."""
    return cloud_event(
        SUBSCRIPTION_EVENT_PREFIX + match.trigger,
        subject=match.story_id,
        data={
            "subscription_id": subscription.id,
            "subscription_name": subscription.name,
            "owner": subscription.owner,
            "trigger": match.trigger,
            "step": match.step,
            "story": story,
            "why": match.why,
        },
        source=source,
        event_id=match.dedup_key,
        time=time,
    )


def test_alert(subscription: Subscription, *, source: str, time: float) -> dict[str, Any]:
    """A clearly marked test alert (``POST /api/subscriptions/{id}/test``): a fresh id each
    time, so each test is a delivery of its own."""
    return cloud_event(
        SUBSCRIPTION_EVENT_PREFIX + "test",
        subject="test",
        data={
            "subscription_id": subscription.id,
            "subscription_name": subscription.name,
            "owner": subscription.owner,
            "trigger": "test",
            "step": None,
            "story": {
                "story_id": "test",
                "headline": "Storywatch test alert: your webhook receives and verifies alerts",
                "size": 0,
                "source_count": 0,
                "sources": [],
                "keywords": [],
                "sample_urls": [],
                "first_seen": None,
                "last_seen": None,
            },
            "why": {"keywords": [], "semantic_score": None, "sources": None},
        },
        source=source,
        event_id=f"{subscription.id}:test:{secrets.token_hex(8)}",
        time=time,
    )


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
