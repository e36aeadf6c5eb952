"""The alert CloudEvent: what ``alerts`` carries (structured mode, JSON) and webhooks send."""

from __future__ import annotations

from typing import Any

from streams.contracts.headers import CLOUDEVENT_HEADERS
from streams.time_ranges import iso_time

__all__ = ["CLOUDEVENT_HEADERS", "SUBSCRIPTION_EVENT_PREFIX", "cloud_event"]

#: The ``type`` prefix of the alerts a subscription match makes (``...new_story``, ``...test``).
SUBSCRIPTION_EVENT_PREFIX = "io.storywatch.subscription."


def cloud_event(
    event_type: str, subject: str, data: dict[str, Any], *, source: str, event_id: str, time: float
) -> dict[str, Any]:
    """A CloudEvents 1.0 structured-mode JSON event; ``event_id`` makes delivery idempotent."""
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": source,
        "id": event_id,
        "subject": subject,
        "time": iso_time(time),
        "datacontenttype": "application/json",
        "data": data,
    }
