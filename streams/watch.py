"""Follow the ``stories`` topic and print each assignment as a line a person can read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaConsumer

__all__ = ["format_story_event", "follow_stories"]

# Why 60 chars: one event per terminal line, with the counts beside the headline.
_HEADLINE_CHARS = 60


def format_story_event(event: dict) -> str:
    """One line: time, decision, story id, size/sources, similarity, headline."""
    when = datetime.fromtimestamp(event["event_time"], tz=UTC).strftime("%m-%d %H:%M")
    decision = {"new": "NEW   ", "joined": "JOINED", "duplicate": "DUP   "}.get(
        event["decision"], event["decision"]
    )
    headline = event["headline"][:_HEADLINE_CHARS]
    return (
        f"{when} {decision} {event['story_id']} size={event['story_size']:<3} "
        f"sources={event['source_count']:<3} sim={event['similarity']:.2f}  {headline}"
    )


def follow_stories(
    bootstrap: str,
    topic: str,
    *,
    print_line: Callable[[str], None],
    stop: Callable[[], bool],
    from_beginning: bool = True,
) -> int:
    """Print story events until ``stop()`` is true; returns how many were printed."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        value_deserializer=json.loads,
        consumer_timeout_ms=500,
    )
    seen = 0
    try:
        while not stop():
            for message in consumer:
                print_line(format_story_event(message.value))
                seen += 1
                if stop():
                    break
    finally:
        consumer.close()
    return seen
