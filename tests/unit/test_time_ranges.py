"""The one time parser of replay, history, rebuild and the alerts API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.exceptions import TimeRangeError
from streams.time_ranges import TimeRange, format_ms, iso_time, parse_instant, parse_range

NOW = int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 24 * HOUR),
        ("7d", NOW - 7 * 24 * HOUR),
        ("2w", NOW - 14 * 24 * HOUR),
        ("30m", NOW - HOUR // 2),
        ("90s", NOW - 90_000),
        ("1.5h", NOW - HOUR * 3 // 2),
        ("6h ago", NOW - 6 * HOUR),
        ("now", NOW),
        ("2026-11-30", ms(2026, 11, 30)),
        ("2026-11-30T10:00:00Z", ms(2026, 11, 30, 10)),
        ("2026-11-30T12:00:00+02:00", ms(2026, 11, 30, 10)),
        ("2026-11-30T05:00:00-05:00", ms(2026, 11, 30, 10)),
        ("1764496800", ms(2025, 11, 30, 10)),
    ],
)
def test_each_form_reads_as_the_same_instant_everywhere(text: str, expected: int) -> None:
    assert parse_instant(text, now=NOW) == expected


def test_relative_and_absolute_agree() -> None:
    absolute = format_ms(NOW - 36 * HOUR)
    assert parse_instant("36h", now=NOW) == parse_instant(absolute, now=NOW)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("yesterday", "not a time I can read"),
        ("2026-11-30T10:00:00", "no UTC offset"),
        ("2026-02-30", "not a calendar date"),
        ("", "is empty"),
        ("5 parsecs", "not a time I can read"),
    ],
)
def test_bad_times_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(TimeRangeError, match=says) as caught:
        parse_instant(text, now=NOW, name="--from")
    assert caught.value.field == "--from"
    assert "--from" in str(caught.value)


def test_end_before_start_says_swap() -> None:
    with pytest.raises(TimeRangeError, match=r"is before --from.*swap them"):
        parse_range("1d", "2d", now=NOW)


def test_range_is_half_open_and_open_ended() -> None:
    window = parse_range("2026-11-30", "2026-12-01", now=NOW)
    assert window == TimeRange(ms(2026, 11, 30), ms(2026, 12, 1))
    assert window.holds(ms(2026, 11, 30)) and not window.holds(ms(2026, 12, 1))
    assert parse_range(None, None, now=NOW).holds(0)
    assert "now" in parse_range("1d", None, now=NOW).describe()


@pytest.mark.parametrize("at", [0, NOW, NOW + 1, NOW + 999, -1_500])
def test_format_and_parse_round_trip(at: int) -> None:
    assert parse_instant(format_ms(at), now=NOW) == at


# The three formatters iso_time replaced, kept here as the oracle of byte-identical output.
def _old_iso_time(ts: float) -> str:  # alerts, the API
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _old_seconds(ts: float) -> str:  # subscriptions' created/updated, feeds
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _old_format_ms(ms: int) -> str:  # Kafka record times
    seconds, millis = divmod(int(ms), 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "")
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


@pytest.mark.parametrize(
    "ts",
    [0.0, 1.0, 1e9, 1_765_000_000.0, 1_765_000_000.5, 1_765_000_000.123456, 1_765_000_000.999999,
     1_765_000_000.0000005, 4_102_444_800.25, 1_700_000_000.1],
)  # fmt: skip
def test_iso_time_writes_exactly_what_the_three_old_formatters_wrote(ts: float) -> None:
    assert iso_time(ts) == _old_iso_time(ts)
    assert iso_time(ts, precision="s") == _old_seconds(ts)
    naive = datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)
    assert iso_time(naive, precision="s") == _old_seconds(ts)
    millis = int(ts * 1000)
    assert format_ms(millis) == _old_format_ms(millis)
    assert iso_time(millis / 1000, precision="ms") == _old_format_ms(millis)


def test_format_ms_is_byte_identical_over_every_millisecond_of_a_second() -> None:
    base = 1_765_000_000_000
    for millis in range(base - 5, base + 1005):
        assert format_ms(millis) == _old_format_ms(millis), millis
