"""Kafka record headers Storywatch sets, in a module without Faust (the replay CLI reads them
without paying for Faust's import)."""

from __future__ import annotations

__all__ = ["REPLAY_SIGNATURE_HEADER", "REPLAY_TIME_HEADER"]

#: Header set by `storywatch produce`: the stream time (ms) of a replayed article, so the worker
#: sees the same clock as `storywatch cluster`; the Kafka timestamp stays the real produce time.
REPLAY_TIME_HEADER = "storywatch-replay-time"
#: Its signature (streams.stream_time): without a valid one the worker ignores the time.
REPLAY_SIGNATURE_HEADER = "storywatch-replay-signature"
