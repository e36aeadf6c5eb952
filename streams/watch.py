"""Follow the ``stories`` (and ``alerts``) topics and print each event as a readable line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.contracts.records import MERGED
from streams.kafka.connection import KafkaConnection

__all__ = ["follow_stories", "format_alert", "format_merge", "format_story_event"]

# Why 60 chars: one event per terminal line, with the counts beside the title.
_HEADLINE_CHARS = 60


def format_story_event(event: dict[str, Any]) -> str:
    """Time, decision, story id, size/sources, similarity, the article's title and, when it
    joined a story, that story's headline."""
    when = datetime.fromtimestamp(event["event_time"], tz=UTC).strftime("%m-%d %H:%M")
    if event["decision"] == MERGED:
        return format_merge(when, event)
    decision = {"new": "NEW   ", "joined": "JOINED", "duplicate": "DUP   "}.get(
        event["decision"], event["decision"]
    )
    title = event.get("title") or event["headline"]
    line = (
        f"{when} {decision} {event['story_id']} size={event['story_size']:<3} "
        f"sources={event['source_count']:<3} sim={event['similarity']:.2f}  "
        f"{title[:_HEADLINE_CHARS]}"
    )
    if event["decision"] != "new" and event["headline"] != title:
        line += f"  [story: {event['headline'][:_HEADLINE_CHARS]}]"
    return line


def format_merge(when: str, event: dict[str, Any]) -> str:
    """A ``merged`` event: which story went into which, the size after it, and why."""
    why = event.get("merge") or {}
    return (
        f"{when} MERGED {event.get('absorbed_id', '?')} -> {event['story_id']} "
        f"size={event['story_size']:<3} sources={event['source_count']:<3} "
        f"bridges={why.get('bridges', '?')} score={why.get('score', '?')}  "
        f"[story: {event['headline'][:_HEADLINE_CHARS]}]"
    )


def format_alert(alert: dict[str, Any]) -> str:
    """One line for a CloudEvent alert."""
    data = alert.get("data", {})
    return (
        f"*** ALERT {alert.get('type', '?')} {data.get('story_id', '?')}: "
        f"{str(data.get('headline', ''))[:_HEADLINE_CHARS]} ({data.get('size')} articles, "
        f"{len(data.get('sources', []))} sources)"
    )


def follow_stories(
    target: KafkaConnection | str,
    topic: str,
    *,
    print_line: Callable[[str], None],
    stop: Callable[[], bool],
    from_beginning: bool = True,
    alerts_topic: str | None = None,
) -> int:
    """Print story events (and alerts) until ``stop()`` is true; returns how many printed.
    ``target``: the connection, or a PLAINTEXT ``host:port``."""
    topics = [topic] + ([alerts_topic] if alerts_topic else [])
    consumer = KafkaConnection.of(target).consumer(
        *topics,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        value_deserializer=json.loads,
        consumer_timeout_ms=500,
    )
    seen = 0
    try:
        while not stop():
            for message in consumer:
                is_alert = message.topic == alerts_topic
                print_line(
                    format_alert(message.value) if is_alert else format_story_event(message.value)
                )
                seen += 1
                if stop():
                    break
    finally:
        consumer.close()
    return seen
