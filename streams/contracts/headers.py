"""Kafka record headers Storywatch sets, in a module without Faust (the replay CLI reads them
without paying for Faust's import)."""

from __future__ import annotations

__all__ = ["CLOUDEVENT_HEADERS", "REPLAY_SIGNATURE_HEADER", "REPLAY_TIME_HEADER"]

#: Header set by `storywatch produce`: the stream time (ms) of a replayed article, so the worker
#: sees the same clock as `storywatch cluster`; the Kafka timestamp stays the real produce time.
REPLAY_TIME_HEADER = "storywatch-replay-time"
#: Its signature (streams.stream_time): without a valid one the worker ignores the time.
REPLAY_SIGNATURE_HEADER = "storywatch-replay-signature"

#: The headers of every record on ``alerts``: the CloudEvents Kafka binding's structured mode
#: requires ``content-type`` (the Java SDK refuses a record without it: "Unknown encoding").
CLOUDEVENT_HEADERS = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
