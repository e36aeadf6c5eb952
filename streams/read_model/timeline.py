"""A story's articles over time: counts per time bucket, coarsened as the story ages, so a
story of any length costs a bounded number of buckets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["BUCKET_LADDER", "TimeCounts", "bucket_for_span"]

#: Bucket widths in seconds: 1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 12 h, 1 day, 1 week. Each
#: divides the next, so counts kept at one width merge exactly into the next.
BUCKET_LADDER = (60, 300, 900, 3600, 10_800, 21_600, 43_200, 86_400, 604_800)
# Why 256: a story keeps at most this many buckets (a dict of ints, ~20 KiB at worst); a
# 72-hour story at 15-minute resolution fits, a longer one is kept at 1 hour and coarser.
_MAX_BUCKETS = 256
# Why 60: bars a timeline draws at most; about 6 px each on a 390 px phone screen.
TIMELINE_MAX_BARS = 60


def bucket_for_span(span_s: float, finest: int, max_bars: int = TIMELINE_MAX_BARS) -> int:
    """The smallest ladder width, not finer than ``finest``, that shows ``span_s`` in at most
    ``max_bars`` bars."""
    for width in BUCKET_LADDER:
        if width >= finest and math.floor(max(span_s, 0.0) / width) + 1 <= max_bars:
            return width
    return BUCKET_LADDER[-1]


@dataclass(slots=True)
class TimeCounts:
    """Counts per bucket start (epoch seconds, aligned to the width)."""

    width: int = BUCKET_LADDER[0]
    counts: dict[int, int] = field(default_factory=dict)

    def add(self, when: float, n: int = 1) -> None:
        start = math.floor(when / self.width) * self.width
        self.counts[start] = self.counts.get(start, 0) + n
        while len(self.counts) > _MAX_BUCKETS and self.width < BUCKET_LADDER[-1]:
            self._coarsen()

    def absorb(self, other: TimeCounts) -> None:
        """Add ``other``'s counts (a merged story's), at the coarser of the two widths."""
        while self.width < other.width:
            self._coarsen()
        for start, n in other.counts.items():
            self.add(start, n)

    def _coarsen(self) -> None:
        width = BUCKET_LADDER[BUCKET_LADDER.index(self.width) + 1]
        merged: dict[int, int] = {}
        for start, n in self.counts.items():
            key = (start // width) * width
            merged[key] = merged.get(key, 0) + n
        self.width, self.counts = width, merged

    def bars(
        self, first: float, last: float, max_bars: int = TIMELINE_MAX_BARS
    ) -> tuple[int, list[tuple[int, int]]]:
        """(bucket width, [(bucket start, count)]) from ``first`` to ``last``, zero-filled, at
        the width :func:`bucket_for_span` picks for that span (the latest ``max_bars`` when
        even weeks are too many)."""
        width = bucket_for_span(last - first, self.width, max_bars)
        hi = math.floor(last / width) * width
        lo = max(math.floor(first / width) * width, hi - (max_bars - 1) * width)
        bars = dict.fromkeys(range(lo, hi + width, width), 0)
        for start, n in self.counts.items():
            key = (start // width) * width
            if key in bars:
                bars[key] += n
        return width, list(bars.items())
