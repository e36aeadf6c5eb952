"""Times on the command line and in the API: ISO-8601 with an offset, a date, a relative
time (``24h``, ``7d``) or epoch seconds, all to epoch milliseconds (Kafka record time).

One parser for ``storywatch replay``, ``storywatch history``, ``storywatch rebuild`` and
``GET /api/alerts``, so the same text means the same instant everywhere; and one formatter,
:func:`iso_time`, for every time Storywatch writes as text (alerts, the API, feeds, the CLI).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from streams.exceptions import TimeRangeError

__all__ = ["TimeRange", "format_ms", "iso_time", "now_ms", "parse_instant", "parse_range"]

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])(?:\s*ago)?$")
_EPOCH = re.compile(r"^\d+(?:\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXAMPLES = "e.g. 2026-12-01T10:00:00Z, 2026-12-01T10:00:00+02:00, 2026-12-01, 24h, 7d, now"


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_time(when: float | datetime, *, precision: Literal["s", "ms", "us"] = "us") -> str:
    """``when`` (epoch seconds, or a datetime: naive is taken as UTC) as ISO-8601 UTC with a
    Z: the one time formatter. ``precision``: ``us`` shows microseconds when not zero (alert
    CloudEvents, the API's times), ``ms`` milliseconds when not zero (Kafka record times,
    see :func:`format_ms`), ``s`` whole seconds, any fraction dropped (stored subscriptions,
    feeds)."""
    if isinstance(when, datetime):
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    elif precision == "ms":
        seconds, millis = divmod(round(when * 1000), 1000)
        stamp = datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "")
        return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"
    else:
        moment = datetime.fromtimestamp(when, tz=UTC)
    if precision == "s":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if precision == "ms":
        return iso_time(moment.timestamp(), precision="ms")
    return moment.isoformat().replace("+00:00", "Z")


def format_ms(ms: int) -> str:
    """Epoch milliseconds (a Kafka record time) as :func:`iso_time` writes them: milliseconds
    shown when not zero, so ``parse_instant(format_ms(t)) == t``."""
    return iso_time(ms / 1000, precision="ms")


def parse_instant(text: str, *, now: int, name: str = "time") -> int:
    """One instant as epoch ms. ``now``: the clock relative times count back from.

    ``24h`` / ``7d`` / ``30m`` / ``2w`` (ago), ``now``, a date (UTC midnight), ISO-8601 with
    an offset (``Z`` or ``+02:00``), or epoch seconds. A time without an offset is refused:
    its meaning would depend on the machine's time zone.
    """
    raw = text.strip()
    if not raw:
        raise TimeRangeError(f"{name} is empty: give a time, {_EXAMPLES}", name)
    lowered = raw.lower()
    if lowered == "now":
        return now
    relative = _RELATIVE.match(lowered)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return now - int(amount * _UNITS_S[unit] * 1000)
    if _EPOCH.match(raw):
        return int(float(raw) * 1000)
    if _DATE.match(raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise TimeRangeError(f"{name}: {raw!r} is not a calendar date", name) from None
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeRangeError(
            f"{name}: {raw!r} is not a time I can read; use ISO-8601, a date or a relative "
            f"time, {_EXAMPLES}",
            name,
        ) from None
    if parsed.tzinfo is None:
        raise TimeRangeError(
            f"{name}: {raw!r} has no UTC offset; add one, e.g. {raw}Z or {raw}+02:00", name
        )
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class TimeRange:
    """``[start_ms, end_ms)`` in Kafka record time; None: open on that side."""

    start_ms: int | None
    end_ms: int | None

    def holds(self, ms: int) -> bool:
        return (self.start_ms is None or ms >= self.start_ms) and (
            self.end_ms is None or ms < self.end_ms
        )

    def describe(self) -> str:
        start = "the beginning" if self.start_ms is None else format_ms(self.start_ms)
        end = "now" if self.end_ms is None else format_ms(self.end_ms)
        return f"[{start}, {end})"


def parse_range(
    start: str | None,
    end: str | None,
    *,
    now: int | None = None,
    start_name: str = "--from",
    end_name: str = "--to",
) -> TimeRange:
    """Both ends parsed against the same ``now``; an end before the start is an error."""
    clock = now_ms() if now is None else now
    start_ms = None if start is None else parse_instant(start, now=clock, name=start_name)
    end_ms = None if end is None else parse_instant(end, now=clock, name=end_name)
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        raise TimeRangeError(
            f"{end_name} ({format_ms(end_ms)}) is before {start_name} ({format_ms(start_ms)}): "
            "swap them",
            end_name,
        )
    return TimeRange(start_ms, end_ms)
