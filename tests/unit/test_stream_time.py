"""Stream time: the signed replay header or the Kafka time, cut to the reader's clock."""

from __future__ import annotations

from streams.contracts.headers import REPLAY_SIGNATURE_HEADER, REPLAY_TIME_HEADER
from streams.stream_time import StreamClock, replay_headers

KEY = b"k" * 32
NOW = 1_800_000_000.0  # the reading stage's wall clock (epoch s)
TOLERANCE = 600.0
YEAR_2100_MS = 4_102_444_800_000
DEMO_2014_MS = 1_394_470_370_000


def _clock(key: bytes = KEY) -> StreamClock:
    return StreamClock(key, TOLERANCE, now=lambda: NOW)


def test_a_kafka_time_in_the_past_is_kept_as_it_is() -> None:
    read = _clock().read([], DEMO_2014_MS, b"a")
    assert read.seconds == read.claimed == DEMO_2014_MS / 1000
    assert not read.capped and read.header == "none"


def test_a_kafka_time_within_the_tolerance_is_kept() -> None:
    ahead = (NOW + TOLERANCE - 1) * 1000
    assert _clock().read([], ahead, b"a").seconds == ahead / 1000


def test_a_kafka_time_past_the_tolerance_is_cut_to_the_clock_and_flagged() -> None:
    read = _clock().read([], YEAR_2100_MS, b"a")
    assert read.seconds == NOW + TOLERANCE
    assert read.claimed == YEAR_2100_MS / 1000
    assert read.capped


def test_a_signed_replay_header_gives_the_files_clock() -> None:
    headers = replay_headers(KEY, b"a", DEMO_2014_MS)
    read = _clock().read(headers, NOW * 1000, b"a")
    assert read.seconds == DEMO_2014_MS / 1000 and read.header == "signed"


def test_headers_as_a_mapping_read_the_same() -> None:
    headers = dict(replay_headers(KEY, b"a", DEMO_2014_MS))
    assert _clock().read(headers, NOW * 1000, b"a").seconds == DEMO_2014_MS / 1000


def test_a_signed_header_in_the_future_is_cut_too() -> None:
    read = _clock().read(replay_headers(KEY, b"a", YEAR_2100_MS), NOW * 1000, b"a")
    assert read.seconds == NOW + TOLERANCE and read.capped and read.header == "signed"


def test_an_unsigned_or_forged_header_is_ignored() -> None:
    plain = [(REPLAY_TIME_HEADER, str(YEAR_2100_MS).encode())]
    forged = [*plain, (REPLAY_SIGNATURE_HEADER, b"0" * 64)]
    other_key = replay_headers(b"x" * 32, b"a", YEAR_2100_MS)
    for headers in (plain, forged, other_key):
        read = _clock().read(headers, DEMO_2014_MS, b"a")
        assert read.seconds == DEMO_2014_MS / 1000, headers
        assert read.header == "unsigned"


def test_a_signature_is_bound_to_its_record_key_and_time() -> None:
    signed = dict(replay_headers(KEY, b"a", DEMO_2014_MS))
    # Copied onto another record: refused.
    assert _clock().read(signed, NOW * 1000, b"b").header == "unsigned"
    # Another time with the same signature: refused.
    moved = {**signed, REPLAY_TIME_HEADER: str(DEMO_2014_MS + 1).encode()}
    assert _clock().read(moved, NOW * 1000, b"a").header == "unsigned"


def test_a_header_that_is_not_a_number_is_ignored() -> None:
    headers = [(REPLAY_TIME_HEADER, b"\xff\x00garbage"), (REPLAY_SIGNATURE_HEADER, b"x")]
    assert _clock().read(headers, DEMO_2014_MS, b"a").seconds == DEMO_2014_MS / 1000
