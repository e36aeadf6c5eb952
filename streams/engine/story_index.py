"""Active story centroids for nearest-story lookups: exact while small, partitioned when large.

Up to ``exact_max`` stories every lookup scans every centroid (one mat-vec: exact). Past
it, the centroids are partitioned into lists by k-means (an inverted-file index, IVF): a
lookup scans only the ``probes`` lists whose coarse centres are nearest to the query, so
its cost grows with N / lists, not with N. The scores it returns are exact cosines; only the
candidate set is approximate (a story whose centroid sits in an unprobed list is missed).
The lists are rebuilt when the index has grown ``_REBUILD_GROWTH`` times since the last
build, so the coarse centres follow the stream.

Every step is deterministic for the same sequence of calls, so the worker and the offline
mode (which make the same calls) see the same candidates.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

import numpy as np

from streams.engine.vectors import Vector

__all__ = ["StoryIndex"]

# Why 50,000: an exact scan reads every centroid (50k x 384 float32 = 73 MiB, ~8-10 ms
# here), about what the model spends per headline; past that the scan, not the model, would
# cap throughput, so lookups turn approximate. Below it every decision is exact.
DEFAULT_EXACT_MAX = 50_000
# Why 16 probes of up to 1,024 lists (~2% of the centroids at 100k): the scan stays well
# under 1 ms. Approximate: on real headlines weakly similar joins (cosine 0.35-0.5) fall in
# other lists; the engine adds the stories that share the article's rarest terms
# (docs/BENCHMARKS.md section 1 measures what is lost).
DEFAULT_PROBES = 16
# Why 1,024 lists at most: the coarse lookup (lists x 384) stays in cache (1.5 MiB), and at
# 100k stories a list holds ~100 centroids, so 16 probes read ~1,600 rows.
_MAX_LISTS = 1024
# Why 8 stories per list at least: fewer makes k-means centres noisy and the coarse lookup
# cost more than the lists it saves.
_MIN_ROWS_PER_LIST = 8
# Why rebuild at 8x growth: centres trained on a small early sample stop fitting the stream;
# rebuilding at every doubling would stall the stream too often (a rebuild reads every row).
_REBUILD_GROWTH = 8
# Why 5 iterations on at most 16k rows: the partition only has to be good enough for 16
# probes to catch the true neighbours; more iterations cost rebuild time, not recall.
_KMEANS_ITERATIONS = 5
_KMEANS_SAMPLE = 16_384
# Why start a list at 16 rows and double: amortised O(1) appends without reallocating.
_INITIAL_ROWS = 16


class _List:
    """One partition: its centroids in a contiguous matrix; removal swaps the last row in."""

    __slots__ = ("ids", "rows")

    def __init__(self, dim: int) -> None:
        self.rows = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        self.ids: list[str] = []

    def append(self, story_id: str, vector: Vector) -> int:
        pos = len(self.ids)
        if pos == self.rows.shape[0]:
            grown = np.zeros((pos * 2, self.rows.shape[1]), dtype=np.float32)
            grown[:pos] = self.rows
            self.rows = grown
        self.rows[pos] = vector
        self.ids.append(story_id)
        return pos

    def pop(self, pos: int) -> str | None:
        """Remove row ``pos``; returns the id of the story moved into it, if any."""
        last = len(self.ids) - 1
        moved = None
        if pos != last:
            moved = self.ids[last]
            self.rows[pos] = self.rows[last]
            self.ids[pos] = moved
        self.ids.pop()
        return moved

    def scores(self, vector: Vector) -> Vector:
        return self.rows[: len(self.ids)] @ vector


class StoryIndex:
    """Maps story ids to unit centroids; see the module docstring."""

    def __init__(
        self, dim: int, exact_max: int = DEFAULT_EXACT_MAX, probes: int = DEFAULT_PROBES
    ) -> None:
        self.dim = dim
        self.exact_max = exact_max
        self.probes = probes
        self._lists = [_List(dim)]
        self._centres: Vector | None = None  # coarse k-means centres, one per list
        self._where: dict[str, tuple[int, int]] = {}  # story id -> (list, row)
        self._built_at = 0  # story count at the last partitioning (0: exact)
        # The last lookup: its query, coarse scores and the lists it probed. A new story is
        # upserted with the very vector the engine just looked up (its list is known without
        # a second coarse product); a joined story moves among those lists (see _list_for).
        self._last_lookup: tuple[Vector, Vector, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._where

    @property
    def partitioned(self) -> bool:
        """True once lookups scan only the nearest lists (approximate candidates)."""
        return self._centres is not None

    @property
    def list_count(self) -> int:
        return len(self._lists)

    def upsert(self, story_id: str, centroid: Vector) -> None:
        """Insert or replace the unit centroid of ``story_id``."""
        place = self._where.get(story_id)
        target = self._list_for(centroid, place)
        if place is not None and place[0] == target:
            self._lists[target].rows[place[1]] = centroid
            return
        if place is not None:
            self._pop(place)
        self._where[story_id] = (target, self._lists[target].append(story_id, centroid))
        count = len(self._where)
        if count > self.exact_max and count >= self._built_at * _REBUILD_GROWTH:
            self._partition()

    def remove(self, story_id: str) -> None:
        """Drop ``story_id`` (no-op if absent)."""
        place = self._where.pop(story_id, None)
        if place is not None:
            self._pop(place)

    def nearest(self, vector: Vector) -> tuple[str, float] | None:
        """The most similar story and its cosine, or None when the index is empty."""
        found = self.candidates(vector, 1)
        return found[0] if found else None

    def candidates(self, vector: Vector, k: int) -> list[tuple[str, float]]:
        """The ``k`` most similar stories with their cosines, best first (exact cosines; the
        set is exact below ``exact_max`` stories, approximate above)."""
        if not self._where or k < 1:
            return []
        lists = self._lists
        if self._centres is None:
            near = lists
        else:
            coarse = self._centres @ vector
            probes = min(self.probes, len(lists))
            nearest_lists = np.argpartition(-coarse, probes - 1)[:probes]
            self._last_lookup = (vector, coarse, nearest_lists)
            near = [lists[i] for i in sorted(nearest_lists.tolist())]
        # only empty lists near the query: scan the others
        probed = [lst for lst in near if lst.ids] or [lst for lst in lists if lst.ids]
        parts = [lst.scores(vector) for lst in probed]
        sims = parts[0] if len(parts) == 1 else np.concatenate(parts)
        count = len(sims)
        k = min(k, count)
        top = np.argpartition(-sims, k - 1)[:k] if k < count else np.arange(count)
        ranked = top[np.lexsort((top, -sims[top]))]  # ties: earlier row first, deterministic
        ends = list(accumulate(len(part) for part in parts))
        found = []
        for row in ranked.tolist():
            lst = bisect_right(ends, row)
            found.append((probed[lst].ids[row - (ends[lst - 1] if lst else 0)], float(sims[row])))
        return found

    def similarities(self, story_ids: list[str], vector: Vector) -> list[float]:
        """Exact cosines of ``vector`` to the given stories' centroids (all must be present)."""
        lists = self._lists
        rows = [lists[lst].rows[pos] for lst, pos in map(self._where.__getitem__, story_ids)]
        return (np.array(rows) @ vector).tolist()

    # -- internals -----------------------------------------------------------------------

    def _list_for(self, vector: Vector, place: tuple[int, int] | None) -> int:
        """The list whose centre is nearest to ``vector``. A story an article just joined
        moved a little towards that article: it stays in its list or moves to one of the
        lists the article's lookup probed, so only those centres are compared."""
        centres = self._centres
        if centres is None:
            return 0
        last = self._last_lookup
        if last is not None and last[0] is vector:
            return int(np.argmax(last[1]))
        if place is not None and last is not None:
            nearby = np.append(last[2], place[0])
            return int(nearby[np.argmax(centres[nearby] @ vector)])
        return int(np.argmax(centres @ vector))

    def _pop(self, place: tuple[int, int]) -> None:
        lst, pos = place
        moved = self._lists[lst].pop(pos)
        if moved is not None:
            self._where[moved] = (lst, pos)

    def _partition(self) -> None:
        """(Re)build the lists: k-means on a sample of the centroids, then re-file all."""
        ids = [sid for lst in self._lists for sid in lst.ids]
        matrix = np.concatenate([lst.rows[: len(lst.ids)] for lst in self._lists])
        count = len(ids)
        n_lists = min(_MAX_LISTS, max(1, count // _MIN_ROWS_PER_LIST))
        step = max(1, count // _KMEANS_SAMPLE)
        centres = _kmeans(matrix[::step], n_lists)
        owner = _nearest_centre(matrix, centres)
        self._centres = centres
        self._last_lookup = None
        self._lists = [_List(self.dim) for _ in range(n_lists)]
        self._where = {}
        for sid, row, lst in zip(ids, matrix, owner.tolist(), strict=True):
            self._where[sid] = (lst, self._lists[lst].append(sid, row))
        self._built_at = count


def _nearest_centre(matrix: Vector, centres: Vector) -> np.ndarray:
    """Index of the most similar centre for each row, in blocks to bound memory."""
    block = 8192
    return np.concatenate(
        [np.argmax(matrix[i : i + block] @ centres.T, axis=1) for i in range(0, len(matrix), block)]
    )


def _kmeans(sample: Vector, n_lists: int) -> Vector:
    """Spherical k-means (cosine), seeded with evenly spaced rows: deterministic."""
    seeds = np.linspace(0, len(sample) - 1, n_lists).astype(np.int64)
    centres = sample[seeds].copy()
    for _ in range(_KMEANS_ITERATIONS):
        owner = _nearest_centre(sample, centres)
        order = np.argsort(owner, kind="stable")
        filed, starts = np.unique(owner[order], return_index=True)
        sums = np.zeros_like(centres)
        sums[filed] = np.add.reduceat(sample[order], starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centres[filled] = sums[filled] / norms[filled]  # an empty list keeps its old centre
    return centres.astype(np.float32)
