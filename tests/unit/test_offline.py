"""The offline shell: replay timestamps, JSONL reading and a full pass with a fake embedder."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import Settings
from streams.engine.article import Article
from streams.engine.clustering import ClusterParams
from streams.engine.offline import cluster_articles, read_jsonl, replay_timestamps
from streams.exceptions import InputFileError
from streams.stages.embed import Limits

DIM = 12


def _limits(max_chars: int) -> Limits:
    """The worker's record and text limits, with the model reading ``max_chars``."""
    return dataclasses.replace(Limits.from_settings(Settings().embed), max_chars=max_chars)


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def ms(iso: str) -> int:
    return int(at(iso).timestamp() * 1000)


def test_replay_timestamps_dated_undated_and_leading() -> None:
    articles = [
        Article(id="0", title="undated first"),
        Article(id="1", title="t", published_at=at("2024-01-01T10:00:00")),
        Article(id="2", title="undated"),
        Article(id="3", title="t", published_at=at("2024-01-01T08:00:00")),  # older: kept
        Article(id="4", title="undated"),
        Article(id="5", title="undated"),
    ]
    assert replay_timestamps(articles) == [
        ms("2024-01-01T10:00:00"),  # leading undated: the first date of the file
        ms("2024-01-01T10:00:00"),
        ms("2024-01-01T10:00:00"),  # undated: the previous date
        ms("2024-01-01T08:00:00"),  # dated: its own date, even when older
        ms("2024-01-01T08:00:00"),
        ms("2024-01-01T08:00:00"),
    ]


def test_replay_timestamps_keep_milliseconds() -> None:
    when = datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert replay_timestamps([Article(id="1", title="t", published_at=when)]) == [1704103200123]


def test_replay_timestamps_without_any_date_use_now() -> None:
    before = int(time.time() * 1000)
    stamps = replay_timestamps([Article(id="1", title="a"), Article(id="2", title="b")])
    after = int(time.time() * 1000)
    assert len(stamps) == 2
    assert stamps[0] == stamps[1]
    assert before <= stamps[0] <= after
    assert replay_timestamps([]) == []


def test_read_jsonl_reads_objects_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "1", "title": "a"}\n\n   \n{"id": "2", "title": "b"}\n', "utf-8")
    assert read_jsonl(path) == [{"id": "1", "title": "a"}, {"id": "2", "title": "b"}]


def test_read_jsonl_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputFileError, match="no such file") as info:
        read_jsonl(path)
    assert str(path) in str(info.value)
    with pytest.raises(InputFileError):
        read_jsonl(tmp_path)  # a folder is not a file


def test_read_jsonl_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "title": "a"}\n\n{"id": 2, oops}\n', "utf-8")
    with pytest.raises(InputFileError) as info:
        read_jsonl(path)
    assert f"{path}:3:" in str(info.value)
    assert "not JSON" in str(info.value)


def test_read_jsonl_non_object_line(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"id": "1", "title": "a"}\n[1, 2]\n', "utf-8")
    with pytest.raises(InputFileError, match=r":2: not a JSON object"):
        read_jsonl(path)


class FakeEmbedder:
    """Deterministic by text: 'quake' texts on one axis, 'election' texts on another."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            low = text.lower()
            if "quake" in low:
                out[row, 0] = 1.0
            elif "election" in low:
                out[row, 1] = 1.0
            else:
                out[row, 2 + sum(map(ord, text)) % (DIM - 2)] = 1.0
        return out


def test_cluster_articles_skips_invalid_rows_and_assigns_the_rest() -> None:
    rows = [
        {"id": "1", "title": "Quake hits city", "published_at": "2024-01-01T00:00:00Z"},
        {"id": "2", "title": "Election called"},
        {"title": "no id at all"},
        {"id": "4", "title": "Quake aftershock", "published_at": "2024-01-01T01:00:00Z"},
        {"id": "5", "title": 7},
        {"id": "6", "title": "Election results"},
        {"id": "7", "title": "Quake relief", "published_at": "2024-01-01T02:00:00Z"},
    ]
    embedder = FakeEmbedder()
    progressed: list[int] = []
    run = cluster_articles(
        rows,
        embedder,  # type: ignore[arg-type]
        ClusterParams(),
        limits=_limits(12),
        batch_size=2,
        progress=progressed.append,
    )
    assert [n for n, _ in run.invalid] == [3, 5]
    assert run.invalid[0][1].startswith("missing_field")
    assert run.invalid[1][1].startswith("wrong_type")

    assert [a.article_id for a in run.assignments] == ["1", "2", "4", "6", "7"]
    by_id = {a.article_id: a for a in run.assignments}
    assert by_id["1"].story_id == by_id["4"].story_id == by_id["7"].story_id
    assert by_id["2"].story_id == by_id["6"].story_id
    assert by_id["1"].story_id != by_id["2"].story_id
    assert by_id["7"].story_size == 3
    # Undated articles take the previous dated article's time, as the replay would.
    assert by_id["2"].event_time == at("2024-01-01T00:00:00").timestamp()
    assert by_id["6"].event_time == at("2024-01-01T01:00:00").timestamp()

    # Only valid articles were embedded, in batches of two, cut at max_chars.
    assert [len(b) for b in embedder.batches] == [2, 2, 1]
    assert embedder.batches[0] == ["Quake hits c", "Election cal"]
    assert all(len(t) <= 12 for b in embedder.batches for t in b)
    # Progress covers every row: the two invalid ones first, then each embedded batch.
    assert progressed == [2, 2, 2, 1]
    assert run.seconds == pytest.approx(run.embed_seconds + run.cluster_seconds)
    assert run.embed_seconds >= 0 and run.cluster_seconds >= 0


def test_cluster_articles_counts_a_repeated_id_once() -> None:
    rows = [
        {"id": "1", "title": "Quake hits city"},
        {"id": "1", "title": "Quake hits city"},
        {"id": "2", "title": "Quake hits city"},  # same content, new id
    ]
    run = cluster_articles(rows, FakeEmbedder(), ClusterParams(), limits=_limits(100))  # type: ignore[arg-type]
    assert run.invalid == []
    assert [(a.article_id, a.decision) for a in run.assignments] == [
        ("1", "new"),
        ("2", "duplicate"),
    ]


def test_cluster_articles_with_only_invalid_rows() -> None:
    embedder = FakeEmbedder()
    run = cluster_articles(
        [{"id": "1"}, json.loads("[]")],  # type: ignore[list-item]
        embedder,  # type: ignore[arg-type]
        ClusterParams(),
        limits=_limits(100),
    )
    assert run.assignments == []
    assert [n for n, _ in run.invalid] == [1, 2]
    assert embedder.batches == []


def test_final_story_ids_follow_chained_merges() -> None:
    from streams.engine.clustering import StoryMerge
    from streams.engine.offline import ClusterRun

    def assigned(aid: str, story: str) -> Any:
        return type("A", (), {"article_id": aid, "story_id": story})()

    def merge(into: str, absorbed: str) -> StoryMerge:
        return StoryMerge(into, absorbed, "x", 3, 0.9, 0.9, 0.8, 5, 2, 0.0)

    run = ClusterRun(
        [assigned("1", "s1"), assigned("2", "s2"), assigned("3", "s3"), assigned("4", "s4")],
        [],
        0.0,
        0.0,
        [merge("s2", "s1"), merge("s3", "s2")],  # s1 -> s2, later s2 -> s3
    )
    assert run.final_story_ids() == {"1": "s3", "2": "s3", "3": "s3", "4": "s4"}
