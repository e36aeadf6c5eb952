"""Replay's names for the one reader of a topic window, which lives in the Kafka room:
streams/kafka/window.py."""

from __future__ import annotations

from streams.kafka.window import Plan, Record, Span, TopicReader

__all__ = ["Plan", "Record", "Span", "TopicReader"]
