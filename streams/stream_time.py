"""The stream time of an ``articles`` record, and how far it is trusted.

A record's stream time is the signed replay header of `storywatch produce` (a file's own
clock, e.g. the demo's 2014 sample), else its Kafka timestamp. Either can be wrong: a
producer's clock in the year 2100 once moved the engine's clock past every active story's
window and expired them all. So the time a stage uses is capped at the wall clock of the
stage that reads the record plus a tolerance (``STORYWATCH_CLOCK_TOLERANCE_MINUTES``); the
record is still processed, at the capped time, and the claimed time travels with it so its
story event can flag it. Past times are never touched: archives and backfills stay as they
are.

The replay header is honoured only with a valid signature (HMAC-SHA256 under the
deployment's key, over the record key and the time), so an outside producer on ``articles``
cannot set it. Plain Python: the embed agent and replay share it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from config.groups import EmbedSettings, KeySettings
from streams.contracts.headers import REPLAY_SIGNATURE_HEADER, REPLAY_TIME_HEADER
from streams.secret_key import derive_key, master_key

__all__ = ["StreamClock", "StreamTime", "replay_headers", "replay_time_key"]

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None]


def replay_time_key(keys: KeySettings) -> bytes:
    """The key that signs and checks replay-time headers (from the deployment's key)."""
    return derive_key(master_key(keys), "replay-time")


def _signature(key: bytes, record_key: bytes | None, millis: int) -> bytes:
    message = (record_key or b"") + b"\0" + str(millis).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest().encode()


def replay_headers(key: bytes, record_key: bytes | None, millis: int) -> list[tuple[str, bytes]]:
    """The headers `storywatch produce` sets on a replayed article: its stream time (ms) and
    the signature that makes a worker honour it."""
    return [
        (REPLAY_TIME_HEADER, str(millis).encode()),
        (REPLAY_SIGNATURE_HEADER, _signature(key, record_key, millis)),
    ]


@dataclass(frozen=True, slots=True)
class StreamTime:
    """A record's stream time as a stage uses it (epoch seconds)."""

    seconds: float  # the time used: the claimed one, cut to the reader's clock + tolerance
    claimed: float  # what the record said (its signed header, else its Kafka time)
    header: str  # "signed", "unsigned" (a header without a valid signature: ignored), "none"

    @property
    def capped(self) -> bool:
        return self.seconds < self.claimed


class StreamClock:
    """Reads records' stream times for one stage, against that stage's wall clock."""

    def __init__(
        self,
        replay_key: bytes,
        tolerance_s: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._key = replay_key
        self._tolerance_s = tolerance_s
        self._now = now

    @classmethod
    def from_settings(cls, embed: EmbedSettings, keys: KeySettings) -> StreamClock:
        """The embed stage's clock: its tolerance, and the deployment's key for the
        replay-time header's signature."""
        return cls(replay_time_key(keys), embed.clock_tolerance_minutes * 60.0)

    def latest(self) -> float:
        """The latest time a record read now may have."""
        return self._now() + self._tolerance_s

    def read(
        self, headers: Headers | None, kafka_ms: float, record_key: bytes | None
    ) -> StreamTime:
        """The stream time of a record with these ``headers``, Kafka time ``kafka_ms`` and
        key ``record_key``."""
        found = dict(headers.items() if isinstance(headers, Mapping) else headers or ())
        claimed_ms, header = float(kafka_ms), "none"
        replay = self._replay_millis(found, record_key)
        if replay is not None:
            claimed_ms, header = float(replay), "signed"
        elif REPLAY_TIME_HEADER in found:
            header = "unsigned"
        claimed = claimed_ms / 1000.0
        return StreamTime(min(claimed, self.latest()), claimed, header)

    def _replay_millis(
        self, found: Mapping[str, bytes | None], record_key: bytes | None
    ) -> int | None:
        value, signature = found.get(REPLAY_TIME_HEADER), found.get(REPLAY_SIGNATURE_HEADER)
        if not value or not signature:
            return None
        try:
            millis = int(value)
        except ValueError:
            return None
        expected = _signature(self._key, record_key, millis)
        return millis if hmac.compare_digest(expected, bytes(signature)) else None
