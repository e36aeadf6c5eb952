"""StoryIndex: nearest lookup, swap-removal bookkeeping, growth and date eligibility."""

from __future__ import annotations

import numpy as np
import pytest

from streams.engine.story_index import StoryIndex

DIM = 8
DAY = 86_400.0


def basis(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def test_nearest_on_empty_index_is_none() -> None:
    index = StoryIndex(DIM)
    assert len(index) == 0
    assert index.nearest(basis(0), None, DAY) is None
    assert index.nearest(basis(0), 1_000.0, DAY) is None


def test_nearest_returns_the_most_similar_and_its_cosine() -> None:
    index = StoryIndex(DIM)
    index.upsert("a", basis(0), None, None)
    index.upsert("b", basis(1), None, None)
    query = (0.6 * basis(0) + 0.8 * basis(1)).astype(np.float32)
    story, sim = index.nearest(query, None, DAY) or ("", 0.0)
    assert story == "b"
    assert sim == pytest.approx(0.8)
    assert "a" in index and "b" in index and "c" not in index


def test_upsert_replaces_an_existing_story() -> None:
    index = StoryIndex(DIM)
    index.upsert("a", basis(0), None, None)
    index.upsert("a", basis(3), None, None)
    assert len(index) == 1
    assert index.nearest(basis(3), None, DAY) == ("a", pytest.approx(1.0))
    assert index.nearest(basis(0), None, DAY) == ("a", pytest.approx(0.0))


def test_remove_middle_row_keeps_ids_mapped_to_their_vectors() -> None:
    index = StoryIndex(DIM)
    for i, name in enumerate("abcde"):
        index.upsert(name, basis(i), None, None)
    index.remove("b")  # the last row ("e") is swapped into b's hole
    assert len(index) == 4
    assert "b" not in index
    for i, name in enumerate("abcde"):
        if name == "b":
            continue
        assert index.nearest(basis(i), None, DAY) == (name, pytest.approx(1.0))
    # Only four stories remain, none along b's axis.
    assert index.nearest(basis(1), None, DAY) is not None
    assert index.nearest(basis(1), None, DAY)[1] == pytest.approx(0.0)  # type: ignore[index]

    # An update to the moved story lands on its new row, not on the old one.
    index.upsert("e", basis(6), None, None)
    assert index.nearest(basis(6), None, DAY) == ("e", pytest.approx(1.0))
    assert index.nearest(basis(4), None, DAY)[1] == pytest.approx(0.0)  # type: ignore[index]
    # A new story after a removal does not clobber a live one.
    index.upsert("f", basis(7), None, None)
    for i, name in ((0, "a"), (2, "c"), (3, "d"), (6, "e"), (7, "f")):
        assert index.nearest(basis(i), None, DAY) == (name, pytest.approx(1.0))


def test_remove_moves_date_range_with_the_row() -> None:
    index = StoryIndex(DIM)
    index.upsert("old", basis(0), 0.0, 0.0)
    index.upsert("mid", basis(1), None, None)
    index.upsert("new", basis(2), 100 * DAY, 100 * DAY)
    index.remove("old")  # "new" moves into row 0 and must take its dates along
    assert index.nearest(basis(2), 100 * DAY, DAY) == ("new", pytest.approx(1.0))
    # At day 0 "new" is out of range, so only the undated "mid" is eligible.
    assert index.nearest(basis(2), 0.0, DAY) == ("mid", pytest.approx(0.0))


def test_remove_absent_and_last() -> None:
    index = StoryIndex(DIM)
    index.remove("nothing")
    index.upsert("a", basis(0), None, None)
    index.upsert("b", basis(1), None, None)
    index.remove("b")
    index.remove("b")
    assert len(index) == 1
    assert index.nearest(basis(1), None, DAY) == ("a", pytest.approx(0.0))
    index.remove("a")
    assert index.nearest(basis(0), None, DAY) is None


def test_grows_past_initial_capacity() -> None:
    dim = 16
    count = 2_500  # past 1,024 and 2,048 rows
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = StoryIndex(dim)
    for i, v in enumerate(vectors):
        index.upsert(f"s{i}", v, float(i), float(i))
    assert len(index) == count
    for i in (0, 1023, 1024, 1025, 2047, 2048, count - 1):
        assert index.nearest(vectors[i], None, 1.0)[0] == f"s{i}"  # type: ignore[index]
        # Dates survived the growth too: at date i only stories i-1..i+1 are eligible.
        found = index.nearest(vectors[i], float(i), 1.0)
        assert found is not None
        assert found[0] == f"s{i}"
    far = index.nearest(vectors[0], float(count + 10), 1.0)
    assert far is None


def test_dated_query_outside_window_is_excluded() -> None:
    index = StoryIndex(DIM)
    index.upsert("dated", basis(0), 10 * DAY, 12 * DAY)
    window = 3 * DAY
    # Inside the range, and within the window on either side: eligible.
    for when in (11 * DAY, 7 * DAY, 15 * DAY):
        assert index.nearest(basis(0), when, window) == ("dated", pytest.approx(1.0))
    # Beyond the window on either side: excluded, even with cosine 1.
    for when in (7 * DAY - 1, 15 * DAY + 1, 100 * DAY, 0.0):
        assert index.nearest(basis(0), when, window) is None


def test_undated_stories_are_always_eligible() -> None:
    index = StoryIndex(DIM)
    index.upsert("dated", basis(0), 10 * DAY, 10 * DAY)
    index.upsert("undated", basis(1), None, None)
    query = (0.9 * basis(0) + np.sqrt(0.19) * basis(1)).astype(np.float32)
    # Near the dated story's date, the dated one wins on similarity.
    assert index.nearest(query, 10 * DAY, DAY)[0] == "dated"  # type: ignore[index]
    # Far from it, only the undated story is eligible.
    assert index.nearest(query, 500 * DAY, DAY)[0] == "undated"  # type: ignore[index]
    # An undated query ignores dates altogether.
    assert index.nearest(query, None, DAY)[0] == "dated"  # type: ignore[index]
