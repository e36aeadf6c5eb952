"""Active story vectors in one contiguous matrix: a nearest-story lookup is one mat-vec."""

from __future__ import annotations

import numpy as np

from streams.engine.vectors import Vector

__all__ = ["StoryIndex"]

# Why start at 1,024 rows and double: amortised O(1) inserts without reallocating per story.
_INITIAL_ROWS = 1024


class StoryIndex:
    """Maps story ids to unit centroid rows; removal swaps the last row into the hole."""

    def __init__(self, dim: int) -> None:
        self._matrix = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        # Dated range of each story (NaN when none of its articles had a date).
        self._lo = np.full(_INITIAL_ROWS, np.nan)
        self._hi = np.full(_INITIAL_ROWS, np.nan)
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._rows

    def upsert(
        self, story_id: str, centroid: Vector, dated_lo: float | None, dated_hi: float | None
    ) -> None:
        """Insert or replace the unit centroid and dated range of ``story_id``."""
        row = self._rows.get(story_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((row * 2, self._matrix.shape[1]), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
                self._lo = np.concatenate([self._lo, np.full(row, np.nan)])
                self._hi = np.concatenate([self._hi, np.full(row, np.nan)])
            self._ids.append(story_id)
            self._rows[story_id] = row
        self._matrix[row] = centroid
        self._lo[row] = np.nan if dated_lo is None else dated_lo
        self._hi[row] = np.nan if dated_hi is None else dated_hi

    def remove(self, story_id: str) -> None:
        """Drop ``story_id`` (no-op if absent)."""
        row = self._rows.pop(story_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._lo[row], self._hi[row] = self._lo[last], self._hi[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()

    def nearest(
        self, vector: Vector, published: float | None, window_s: float
    ) -> tuple[str, float] | None:
        """The most similar eligible story and its cosine, or None when there is none.

        A dated article is only eligible for stories whose dated range, widened by
        ``window_s`` on both sides, contains its date (undated stories are always eligible).
        """
        count = len(self._ids)
        if not count:
            return None
        sims = self._matrix[:count] @ vector
        if published is not None:
            lo, hi = self._lo[:count], self._hi[:count]
            with np.errstate(invalid="ignore"):
                too_far = (published < lo - window_s) | (published > hi + window_s)
            sims = np.where(too_far, -np.inf, sims)
        best = int(np.argmax(sims))
        if not np.isfinite(sims[best]):
            return None
        return self._ids[best], float(sims[best])
