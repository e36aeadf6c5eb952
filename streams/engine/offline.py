"""The offline shell around the engine: a JSONL file in, one assignment per article out.

The same :class:`StoryEngine` and defaults as the worker; the record timestamps a worker would
see are reproduced by :func:`replay_timestamps`, which `storywatch produce` also uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.engine.article import Article
from streams.engine.clustering import Assignment, ClusterParams, StoryEngine
from streams.engine.embedding import Embedder
from streams.engine.validation import InvalidArticle, article_from_mapping
from streams.exceptions import InputFileError

__all__ = ["ClusterRun", "cluster_articles", "read_jsonl", "replay_timestamps"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All JSON objects of a JSONL file; a bad line is one clear :class:`InputFileError`."""
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; pass a JSON-lines file of articles")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFileError(
                    f"{path}:{number}: not JSON ({exc.msg}); each line must be one JSON object"
                ) from exc
            if not isinstance(row, dict):
                raise InputFileError(f"{path}:{number}: not a JSON object")
            rows.append(row)
    return rows


def replay_timestamps(articles: Sequence[Article]) -> list[int]:
    """Kafka record timestamps (ms) for replaying a file: each dated article's own date; an
    undated one takes the previous date (or the first date of the file when none came yet)."""
    first = next((a.published_at for a in articles if a.published_at), None)
    current = int(first.timestamp() * 1000) if first else int(time.time() * 1000)
    stamps = []
    for article in articles:
        if article.published_at is not None:
            current = int(article.published_at.timestamp() * 1000)
        stamps.append(current)
    return stamps


@dataclass(frozen=True)
class ClusterRun:
    assignments: list[Assignment]
    invalid: list[tuple[int, str]]  # (1-based row number, reason): skipped, as the DLQ would
    embed_seconds: float
    cluster_seconds: float

    @property
    def seconds(self) -> float:
        return self.embed_seconds + self.cluster_seconds


def cluster_articles(
    rows: Sequence[dict[str, Any]],
    embedder: Embedder,
    params: ClusterParams,
    *,
    max_chars: int,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> ClusterRun:
    """Embed and cluster ``rows`` in file order, one online pass."""
    articles = []
    invalid = []
    for number, row in enumerate(rows, start=1):
        try:
            articles.append(article_from_mapping(row))
        except InvalidArticle as exc:
            invalid.append((number, str(exc)))
    stamps = replay_timestamps(articles)
    engine = StoryEngine(params)
    assignments: list[Assignment] = []
    embed_s = cluster_s = 0.0
    for start in range(0, len(articles), batch_size):
        batch = articles[start : start + batch_size]
        t0 = time.perf_counter()
        vectors = embedder.encode([a.embed_text(max_chars) for a in batch])
        t1 = time.perf_counter()
        for article, vector, stamp in zip(batch, vectors, stamps[start:], strict=False):
            assignment, _ = engine.process(article, vector, stamp / 1000.0)
            if assignment is not None:
                assignments.append(assignment)
        cluster_s += time.perf_counter() - t1
        embed_s += t1 - t0
        if progress:
            progress(len(batch))
    return ClusterRun(assignments, invalid, embed_s, cluster_s)
