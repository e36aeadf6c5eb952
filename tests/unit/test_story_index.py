"""StoryIndex: nearest and top-k lookups, swap-removal bookkeeping and growth."""

from __future__ import annotations

import numpy as np
import pytest

from streams.engine.story_index import StoryIndex

DIM = 8


def basis(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def test_nearest_on_empty_index_is_none() -> None:
    index = StoryIndex(DIM)
    assert len(index) == 0
    assert index.nearest(basis(0)) is None
    assert index.candidates(basis(0), 3) == []


def test_nearest_returns_the_most_similar_and_its_cosine() -> None:
    index = StoryIndex(DIM)
    index.upsert("a", basis(0))
    index.upsert("b", basis(1))
    query = (0.6 * basis(0) + 0.8 * basis(1)).astype(np.float32)
    story, sim = index.nearest(query) or ("", 0.0)
    assert story == "b"
    assert sim == pytest.approx(0.8)
    assert "a" in index and "b" in index and "c" not in index


def test_upsert_replaces_an_existing_story() -> None:
    index = StoryIndex(DIM)
    index.upsert("a", basis(0))
    index.upsert("a", basis(3))
    assert len(index) == 1
    assert index.nearest(basis(3)) == ("a", pytest.approx(1.0))
    assert index.nearest(basis(0)) == ("a", pytest.approx(0.0))


def test_remove_middle_row_keeps_ids_mapped_to_their_vectors() -> None:
    index = StoryIndex(DIM)
    for i, name in enumerate("abcde"):
        index.upsert(name, basis(i))
    index.remove("b")  # the last row ("e") is swapped into b's hole
    assert len(index) == 4
    assert "b" not in index
    for i, name in enumerate("abcde"):
        if name == "b":
            continue
        assert index.nearest(basis(i)) == (name, pytest.approx(1.0))
    # Only four stories remain, none along b's axis.
    assert index.nearest(basis(1)) is not None
    assert index.nearest(basis(1))[1] == pytest.approx(0.0)  # type: ignore[index]
    assert {sid for sid, _ in index.candidates(basis(1), 10)} == set("acde")

    # An update to the moved story lands on its new row, not on the old one.
    index.upsert("e", basis(6))
    assert index.nearest(basis(6)) == ("e", pytest.approx(1.0))
    assert index.nearest(basis(4))[1] == pytest.approx(0.0)  # type: ignore[index]
    # A new story after a removal does not clobber a live one.
    index.upsert("f", basis(7))
    for i, name in ((0, "a"), (2, "c"), (3, "d"), (6, "e"), (7, "f")):
        assert index.nearest(basis(i)) == (name, pytest.approx(1.0))


def test_remove_absent_and_last() -> None:
    index = StoryIndex(DIM)
    index.remove("nothing")
    index.upsert("a", basis(0))
    index.upsert("b", basis(1))
    index.remove("b")
    index.remove("b")
    assert len(index) == 1
    assert index.nearest(basis(1)) == ("a", pytest.approx(0.0))
    index.remove("a")
    assert index.nearest(basis(0)) is None
    assert index.candidates(basis(0), 1) == []


def test_grows_past_initial_capacity() -> None:
    dim = 16
    count = 2_500  # past 1,024 and 2,048 rows
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = StoryIndex(dim)
    for i, v in enumerate(vectors):
        index.upsert(f"s{i}", v)
    assert len(index) == count
    for i in (0, 1023, 1024, 1025, 2047, 2048, count - 1):
        assert index.nearest(vectors[i]) == (f"s{i}", pytest.approx(1.0, abs=1e-5))
    assert len(index.candidates(vectors[0], count + 5)) == count


# --- candidates ------------------------------------------------------------------------


def _graded_index() -> tuple[StoryIndex, np.ndarray, dict[str, float]]:
    """Five stories whose cosines to the query are known and all distinct."""
    query = np.full(DIM, 1.0 / np.sqrt(DIM), dtype=np.float32)
    index = StoryIndex(DIM)
    cosines: dict[str, float] = {}
    # Inserted out of order so that row order != similarity order.
    for name, weight in (("c", 0.5), ("a", 0.9), ("e", 0.1), ("b", 0.7), ("d", 0.3)):
        # Unit vector with cosine ``weight`` to the query: weight*query + rest on a basis
        # direction made orthogonal to the query.
        other = basis(0) - query * float(query[0])
        other /= np.linalg.norm(other)
        v = (weight * query + np.sqrt(1 - weight * weight) * other).astype(np.float32)
        index.upsert(name, v)
        cosines[name] = weight
    return index, query, cosines


def test_candidates_are_ordered_best_first_with_their_cosines() -> None:
    index, query, cosines = _graded_index()
    top = index.candidates(query, 3)
    assert [sid for sid, _ in top] == ["a", "b", "c"]
    for sid, sim in top:
        assert sim == pytest.approx(cosines[sid], abs=1e-5)
    sims = [sim for _, sim in index.candidates(query, 5)]
    assert sims == sorted(sims, reverse=True)


def test_candidates_with_k_larger_than_the_count_returns_all_in_order() -> None:
    index, query, _ = _graded_index()
    everything = index.candidates(query, 50)
    assert [sid for sid, _ in everything] == ["a", "b", "c", "d", "e"]
    assert index.candidates(query, 5) == everything


def test_candidates_with_k_one_equals_nearest() -> None:
    index, query, _ = _graded_index()
    assert index.candidates(query, 1) == [index.nearest(query)]
    assert index.candidates(query, 1)[0][0] == "a"
    for i in range(DIM):
        assert index.candidates(basis(i), 1) == [index.nearest(basis(i))]


def test_candidates_after_removal_skip_the_removed_story() -> None:
    index, query, _ = _graded_index()
    index.remove("a")
    assert [sid for sid, _ in index.candidates(query, 2)] == ["b", "c"]
    assert index.nearest(query)[0] == "b"  # type: ignore[index]
