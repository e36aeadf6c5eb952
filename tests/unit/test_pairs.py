"""Judged pairs: scoring against a clustering, reading, and deterministic derivation."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.engine.pairs import JudgedPair, derive_pairs, read_pairs, score_pairs
from streams.exceptions import InputFileError


def test_score_pairs_hand_computed() -> None:
    story_of = {"a1": "s1", "a2": "s1", "b1": "s1", "c1": "s2"}
    pairs = [
        JudgedPair("a1", "a2", True, "same"),  # together, truly same: right
        JudgedPair("a1", "b1", False, "same_kind"),  # merged other event: wrong
        JudgedPair("a1", "c1", False, "other_kind"),  # apart, truly different: right
        JudgedPair("a2", "c1", True, "same"),  # apart but truly same: wrong
        JudgedPair("a1", "zz", False, "same_kind"),  # unassigned article: skipped
    ]
    got = score_pairs(pairs, story_of)
    assert got.pairs == 4 and got.missing == 1
    assert got.accuracy == pytest.approx(2 / 4)
    # Predicted different: (a1,c1), (a2,c1); truly different among them: (a1,c1).
    assert got.different_precision == pytest.approx(1 / 2)
    # Truly different (judged): (a1,b1), (a1,c1); found apart: (a1,c1).
    assert got.different_recall == pytest.approx(1 / 2)
    assert got.accuracy_by_kind == {
        "other_kind": (1, 1.0),
        "same": (2, 0.5),
        "same_kind": (1, 0.0),
    }


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for topic in ("1", "2", "3"):
        for event in ("ecb", "ecbplus"):
            for n in range(4):
                label = f"{topic}_{event}"
                rows.append({"id": f"{label}-{n}", "label": label, "topic": topic})
    return rows


def test_derived_pairs_have_the_kind_their_labels_say() -> None:
    rows = _rows()
    label = {r["id"]: r["label"] for r in rows}
    topic = {r["id"]: r["topic"] for r in rows}
    pairs = derive_pairs(rows, per_kind=10, seed=1)
    kinds = {p.kind for p in pairs}
    assert kinds == {"same", "same_kind", "other_kind"}
    for p in pairs:
        assert p.a < p.b
        assert p.same_story == (label[p.a] == label[p.b]) == (p.kind == "same")
        if p.kind == "same_kind":
            assert topic[p.a] == topic[p.b]
        if p.kind == "other_kind":
            assert topic[p.a] != topic[p.b]
    assert len({(p.a, p.b) for p in pairs}) == len(pairs)


def test_derived_pairs_are_deterministic_and_seeded() -> None:
    rows = _rows()
    assert derive_pairs(rows, per_kind=10, seed=1) == derive_pairs(rows, per_kind=10, seed=1)
    assert derive_pairs(rows, per_kind=10, seed=1) != derive_pairs(rows, per_kind=10, seed=2)


def test_read_pairs_and_a_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "p.jsonl"
    good.write_text('{"a": "x", "b": "y", "same_story": false, "kind": "same_kind"}\n\n')
    assert read_pairs(good) == [JudgedPair("x", "y", False, "same_kind")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y", "same_story": true}\n{"a": "x"}\n')
    with pytest.raises(InputFileError, match=r"bad\.jsonl:2"):
        read_pairs(bad)
    with pytest.raises(InputFileError, match="no such file"):
        read_pairs(tmp_path / "none.jsonl")
