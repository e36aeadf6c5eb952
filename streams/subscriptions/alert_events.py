"""The alert a subscription match makes (a CloudEvent; its shape: streams.contracts)."""

from __future__ import annotations

import secrets
from typing import Any

from streams.contracts.cloudevents import SUBSCRIPTION_EVENT_PREFIX, cloud_event
from streams.subscriptions.matching import Match
from streams.subscriptions.model import Subscription

__all__ = ["StorySummary", "match_alert", "test_alert"]

StorySummary = dict[str, Any]  # story_id, headline, size, source_count, sources, keywords, ...


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
