"""Which keys went quiet: the bound on per-story state outside the engine (alert rules,
subscription matching). The engine expires its own stories; the stages after it use this to
forget what they keep per story once the story has left the active window."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["InactiveKeys"]

# Why 1,024: below this many stale heap entries a rebuild costs more than it frees.
_COMPACT_SLACK = 1024


class InactiveKeys:
    """Keys by last activity. The clock is the newest time seen (stream time, like the
    engine's); a key whose last activity is more than ``window_s`` behind it is expired.

    Memory: one dict entry per live key plus heap entries; stale heap entries (a key touched
    again later) are dropped when they outnumber the live keys, so the heap stays below
    twice the live keys plus a small slack.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.clock = float("-inf")
        self._last: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._last)

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def touch(self, key: str, when: float) -> None:
        """Record activity of ``key`` at ``when`` (moves the clock forward)."""
        self.clock = max(self.clock, when)
        if when > self._last.get(key, float("-inf")):
            self._last[key] = when
            heapq.heappush(self._heap, (when, key))
            if len(self._heap) > 2 * len(self._last) + _COMPACT_SLACK:
                self._heap = [(t, k) for k, t in self._last.items()]
                heapq.heapify(self._heap)

    def last_activity(self, key: str) -> float | None:
        return self._last.get(key)

    def clear(self) -> None:
        self.clock = float("-inf")
        self._last.clear()
        self._heap.clear()

    def reload(self, records: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Start again from a table's (key, record) pairs whose records keep ``last_seen``
        (after a start or a rebalance). A record without it (written before pruning
        existed) counts as inactive since the epoch: it goes at the next prune."""
        self.clear()
        for key, record in records:
            if record is not None:
                self.touch(key, float(record.get("last_seen", 0.0)))

    def forget(self, key: str) -> None:
        self._last.pop(key, None)  # its heap entries turn stale

    def pop_expired(self) -> list[str]:
        """Remove and return the keys inactive for longer than the window, oldest first."""
        cutoff = self.clock - self.window_s
        expired = []
        while self._heap and self._heap[0][0] < cutoff:
            when, key = heapq.heappop(self._heap)
            if self._last.get(key) == when:
                del self._last[key]
                expired.append(key)
        return expired
