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
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._rows

    def upsert(self, story_id: str, centroid: Vector) -> None:
        """Insert or replace the unit centroid of ``story_id``."""
        row = self._rows.get(story_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((row * 2, self._matrix.shape[1]), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
            self._ids.append(story_id)
            self._rows[story_id] = row
        self._matrix[row] = centroid

    def remove(self, story_id: str) -> None:
        """Drop ``story_id`` (no-op if absent)."""
        row = self._rows.pop(story_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()

    def nearest(self, vector: Vector) -> tuple[str, float] | None:
        """The most similar story and its cosine, or None when the index is empty."""
        found = self.candidates(vector, 1)
        return found[0] if found else None

    def candidates(self, vector: Vector, k: int) -> list[tuple[str, float]]:
        """The ``k`` most similar stories with their cosines, best first."""
        count = len(self._ids)
        if not count:
            return []
        sims = self._matrix[:count] @ vector
        k = min(k, count)
        top = np.argpartition(-sims, k - 1)[:k] if k < count else np.arange(count)
        ranked = top[np.argsort(-sims[top], kind="stable")]
        return [(self._ids[i], float(sims[i])) for i in ranked]
