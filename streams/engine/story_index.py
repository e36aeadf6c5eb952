"""Active story centroids for nearest-story lookups: exact while small, partitioned when large.

Up to ``exact_max`` stories every lookup scans every centroid (one mat-vec: exact). Past
it, the centroids are partitioned into lists by k-means (an inverted-file index, IVF): a
lookup scans only the ``probes`` lists whose coarse centres are nearest to the query, so
its cost grows with N / lists, not with N. The scores it returns are exact cosines; only the
candidate set is approximate (a story whose centroid sits in an unprobed list is missed).
The lists are rebuilt when the index has grown ``_REBUILD_GROWTH`` times since the last
build, so the coarse centres follow the stream.

A partitioned lookup scans a third of the bytes: at each build the index also learns the
``_SCREEN_DIMS`` principal directions of the centroids and keeps every centroid's projection
on them (its "head"). The probed lists are first scored on heads; the best ``_SCREEN_KEEP``
rows are then scored exactly on their full centroids, and only those exact cosines rank the
result. The scan is bound by memory bandwidth, so this is where the time goes down
(docs/BENCHMARKS.md).

Every step is deterministic for the same sequence of calls, so the worker and the offline
mode (which make the same calls) see the same candidates.
"""

from __future__ import annotations

from itertools import accumulate
from typing import NamedTuple

import numpy as np

from config.settings import setting_default
from streams.engine.vectors import Vector

__all__ = ["StoryIndex"]

# The defaults of STORYWATCH_INDEX_EXACT_MAX and STORYWATCH_INDEX_PROBES (config.Settings says
# why each): written once there.
DEFAULT_EXACT_MAX: int = setting_default("index_exact_max")
DEFAULT_PROBES: int = setting_default("index_probes")
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
# Why screen on 128 of 384 dimensions: on the dev files' all-MiniLM-L6-v2 embeddings the top
# 128 principal directions hold 85% of the energy, and every one of the exact top 5 (cosine
# >= 0.3) was among the 32 best screened of 1,758 rows (a 16-list probe reads ~1,600): 64
# dimensions kept 99.2%, 96 kept 99.8%. A third of the bytes for a memory-bound scan.
_SCREEN_DIMS = 128
# Why re-score 32 rows exactly: the recall above (1.0 at 32, 0.999 at 20) for ~32 random row
# reads, a few percent of the scan they replace.
_SCREEN_KEEP = 32


class _List:
    """One partition: its centroids in a contiguous matrix (and their heads, the projections
    a partitioned index screens with); removal swaps the last row in."""

    __slots__ = ("heads", "ids", "rows")

    def __init__(self, dim: int, head_dim: int = 0) -> None:
        self.rows = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        self.heads = np.zeros((_INITIAL_ROWS, head_dim), dtype=np.float32)
        self.ids: list[str] = []

    def append(self, story_id: str, vector: Vector, head: Vector | None = None) -> int:
        pos = len(self.ids)
        if pos == self.rows.shape[0]:
            self.rows = _grown(self.rows)
            self.heads = _grown(self.heads)
        self.rows[pos] = vector
        if head is not None:
            self.heads[pos] = head
        self.ids.append(story_id)
        return pos

    def pop(self, pos: int) -> str | None:
        """Remove row ``pos``; returns the id of the story moved into it, if any."""
        last = len(self.ids) - 1
        moved = None
        if pos != last:
            moved = self.ids[last]
            self.rows[pos] = self.rows[last]
            self.heads[pos] = self.heads[last]
            self.ids[pos] = moved
        self.ids.pop()
        return moved


def _grown(matrix: Vector) -> Vector:
    """A copy with twice the rows (the new ones zero)."""
    grown = np.zeros((matrix.shape[0] * 2, matrix.shape[1]), dtype=np.float32)
    grown[: matrix.shape[0]] = matrix
    return grown


class _Lookup(NamedTuple):
    """The last partitioned lookup. A new story is upserted with the very vector the engine
    just looked up (its list and head are known without more products); a joined story moves
    among the lists that lookup probed (see ``_list_for``)."""

    query: Vector
    head: Vector  # the query's projection on the screening directions
    best_list: int  # the list whose centre is nearest to the query
    probed_lists: np.ndarray


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
        self._basis: Vector | None = None  # screening directions (rows), set with the centres
        self._where: dict[str, tuple[int, int]] = {}  # story id -> (list, row)
        self._built_at = 0  # story count at the last partitioning (0: exact)
        self._last_lookup: _Lookup | None = None

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
        target, head = self._list_for(centroid, place)
        if place is not None and place[0] == target:
            lst = self._lists[target]
            lst.rows[place[1]] = centroid
            if head is not None:
                lst.heads[place[1]] = head
            return
        if place is not None:
            self._pop(place)
        self._where[story_id] = (target, self._lists[target].append(story_id, centroid, head))
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
        """The ``k`` most similar stories with their cosines, best first, ties by position
        (exact cosines; the set is exact below ``exact_max`` stories, approximate above)."""
        if not self._where or k < 1:
            return []
        lists = self._lists
        if self._basis is None:
            probed = [lst for lst in lists if lst.ids]
            sims, ends = _scan(probed, vector, heads=False)
            rows = _top_rows(sims, k)
            places = _locate(probed, ends, rows)
            exact = sims[rows]
        else:
            head = self._basis @ vector
            nearest_lists = self._nearest_lists(vector, head)
            # only empty lists near the query: scan the others
            probed = [lists[i] for i in nearest_lists.tolist() if lists[i].ids]
            probed = probed or [lst for lst in lists if lst.ids]
            screen, ends = _scan(probed, head, heads=True)
            places = _locate(probed, ends, _top_rows(screen, max(k, _SCREEN_KEEP)))
            exact = np.array([lst.rows[pos] for lst, pos in places]) @ vector
        found = [
            (lst.ids[pos], sim) for (lst, pos), sim in zip(places, exact.tolist(), strict=True)
        ]
        found.sort(key=lambda kv: -kv[1])  # stable: equal cosines stay in row order
        return found[:k]

    def similarities(self, story_ids: list[str], vector: Vector) -> list[float]:
        """Exact cosines of ``vector`` to the given stories' centroids (all must be present)."""
        lists = self._lists
        rows = [lists[lst].rows[pos] for lst, pos in map(self._where.__getitem__, story_ids)]
        return (np.array(rows) @ vector).tolist()

    # -- internals -----------------------------------------------------------------------

    def _nearest_lists(self, vector: Vector, head: Vector) -> np.ndarray:
        """The ``probes`` lists whose centres are nearest to ``vector`` (ascending: a fixed
        scan order). Remembers the lookup. The centres are compared exactly: screening them
        on heads picked other lists on random centroids (decisions equal to the exact
        engine's fell from 89% to 76% in bench/clustering_cost.py at 100k)."""
        assert self._centres is not None
        coarse = self._centres @ vector
        nearest = _top_rows(coarse, self.probes)
        self._last_lookup = _Lookup(vector, head, int(np.argmax(coarse)), nearest)
        return nearest

    def _list_for(self, vector: Vector, place: tuple[int, int] | None) -> tuple[int, Vector | None]:
        """The list whose centre is nearest to ``vector``, and ``vector``'s head (None while
        exact). A story an article just joined moved a little towards that article: it stays
        in its list or moves to one of the lists the article's lookup probed, so only those
        centres are compared."""
        centres, basis = self._centres, self._basis
        if centres is None or basis is None:
            return 0, None
        last = self._last_lookup
        if last is not None and last.query is vector:
            return last.best_list, last.head
        head = basis @ vector
        if place is not None and last is not None:
            nearby = np.append(last.probed_lists, place[0])
            return int(nearby[np.argmax(centres[nearby] @ vector)]), head
        return int(np.argmax(centres @ vector)), head

    def _pop(self, place: tuple[int, int]) -> None:
        lst, pos = place
        moved = self._lists[lst].pop(pos)
        if moved is not None:
            self._where[moved] = (lst, pos)

    def _partition(self) -> None:
        """(Re)build: screening directions and k-means on a sample of the centroids, then
        re-file every centroid with its head."""
        ids = [sid for lst in self._lists for sid in lst.ids]
        matrix = np.concatenate([lst.rows[: len(lst.ids)] for lst in self._lists])
        count = len(ids)
        n_lists = min(_MAX_LISTS, max(1, count // _MIN_ROWS_PER_LIST))
        sample = matrix[:: max(1, count // _KMEANS_SAMPLE)]
        basis = _principal_directions(sample, min(_SCREEN_DIMS, self.dim))
        centres = _kmeans(sample, n_lists)
        owner = _nearest_centre(matrix, centres)
        heads = matrix @ basis.T
        self._centres, self._basis = centres, basis
        self._last_lookup = None
        self._lists = [_List(self.dim, len(basis)) for _ in range(n_lists)]
        self._where = {}
        for sid, row, head, lst in zip(ids, matrix, heads, owner.tolist(), strict=True):
            self._where[sid] = (lst, self._lists[lst].append(sid, row, head))
        self._built_at = count


def _scan(probed: list[_List], query: Vector, *, heads: bool) -> tuple[Vector, list[int]]:
    """Every row of the probed lists scored against ``query`` (their heads, or their full
    centroids), in one buffer, and where each list ends in it."""
    ends = list(accumulate(len(lst.ids) for lst in probed))
    scores = np.empty(ends[-1], dtype=np.float32)
    start = 0
    for lst, end in zip(probed, ends, strict=True):
        matrix = lst.heads if heads else lst.rows
        np.dot(matrix[: end - start], query, out=scores[start:end])  # no concatenation
        start = end
    return scores, ends


def _locate(probed: list[_List], ends: list[int], rows: np.ndarray) -> list[tuple[_List, int]]:
    """The list and position of each row of a :func:`_scan` buffer."""
    owners = np.searchsorted(ends, rows, side="right").tolist()
    return [
        (probed[lst], row - (ends[lst - 1] if lst else 0))
        for row, lst in zip(rows.tolist(), owners, strict=True)
    ]


def _principal_directions(sample: Vector, count: int) -> Vector:
    """The ``count`` directions holding most of the rows' energy (top eigenvectors of their
    second-moment matrix), as rows: projections on them keep most of every dot product."""
    wide = sample.astype(np.float64)
    _, vectors = np.linalg.eigh(wide.T @ wide)  # ascending eigenvalues
    return np.ascontiguousarray(vectors[:, ::-1][:, :count].T, dtype=np.float32)


def _top_rows(scores: Vector, k: int) -> np.ndarray:
    """Ascending positions of the ``k`` highest scores, with every score tied with the k-th
    (a partition by value and a mask: cheaper here than ``np.argpartition``)."""
    if k >= len(scores):
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    return np.flatnonzero(scores >= kth)


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
