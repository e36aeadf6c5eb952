"""The consumer's answer to a jump in a stream partition's offsets (streams/kafka_transport.py)."""

from __future__ import annotations

from streams.kafka_transport import rewind_to


def test_consecutive_offsets_read_on() -> None:
    assert rewind_to(1669, 1670, None) is None


def test_the_first_record_after_a_seek_reads_on() -> None:
    # After a seek Faust's read offset is the offset to read next: the same offset arrives.
    assert rewind_to(1606, 1606, None) is None


def test_nothing_read_yet_reads_on() -> None:
    assert rewind_to(None, 500, None) is None


def test_skipped_records_are_read_again_from_the_read_offset() -> None:
    # What the kill test saw: 1670..1904 dropped inside Faust, 1905 arrived after 1669
    # (1669 is read twice: harmless, every stage is idempotent by id).
    assert rewind_to(1669, 1905, None) == 1669
    # What the takeover test saw: seeked to 267 (the offset to read next), 271 arrived.
    assert rewind_to(267, 271, None) == 267


def test_a_jump_seen_again_from_the_same_place_is_real_and_let_through() -> None:
    assert rewind_to(1669, 1905, 1669) is None
    assert rewind_to(1700, 1800, 1669) == 1700
