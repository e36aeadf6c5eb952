"""The offline shell around the engine: a JSONL file in, one assignment per article out.

The same :class:`StoryEngine` and defaults as the worker; the record timestamps a worker would
see are reproduced by :func:`replay_timestamps`, which `storywatch produce` also uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from config.settings import setting_default
from streams.engine.article import Article
from streams.engine.clustering import Assignment, ClusterParams, StoryEngine, StoryMerge
from streams.engine.embedding import Embedder
from streams.engine.evidence import TextEvidence
from streams.engine.validation import InvalidArticle
from streams.exceptions import InputFileError
from streams.stages.cluster import ClusterInput, cluster
from streams.stages.embed import Limits, Parsed, parse
from streams.stages.merges import resolve
from streams.wire_json import dumps as wire_dumps

__all__ = [
    "ClusterRun",
    "EmbeddedStream",
    "cluster_articles",
    "cluster_stream",
    "embed_rows",
    "read_jsonl",
    "replay_timestamps",
]


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
class EmbeddedStream:
    """A file's valid articles in order, their embeddings, text evidence and replay clock."""

    articles: list[Article]
    vectors: npt.NDArray[np.float32]
    stamps_ms: list[int]
    invalid: list[tuple[int, str]]  # (1-based row number, reason): skipped, as the DLQ would
    embed_seconds: float
    evidence: list[TextEvidence] | None = None  # per article, as the embed stage computed it


@dataclass(frozen=True)
class ClusterRun:
    assignments: list[Assignment]  # story ids as decided at each article's arrival
    invalid: list[tuple[int, str]]
    embed_seconds: float
    cluster_seconds: float
    merges: list[StoryMerge] = field(default_factory=list)  # in stream order

    def final_story_ids(self) -> dict[str, str]:
        """Article id -> its story at the end of the stream (merged stories followed)."""
        into = {m.absorbed_id: m.story_id for m in self.merges}
        return {a.article_id: resolve(a.story_id, into.get) for a in self.assignments}

    @property
    def seconds(self) -> float:
        return self.embed_seconds + self.cluster_seconds


def embed_rows(
    rows: Sequence[dict[str, Any]],
    embedder: Embedder,
    *,
    limits: Limits,
    batch_size: int = setting_default("embed_batch_size"),
    progress: Callable[[int], None] | None = None,
) -> EmbeddedStream:
    """The embed stage (streams.stages.embed, as the worker runs it) over ``rows`` in file
    order: each row parsed as the record a producer would send, with the worker's limits
    (invalid rows are reported, not embedded), the valid ones' texts encoded in batches."""
    valid: list[Parsed] = []
    invalid: list[tuple[int, str]] = []
    for number, row in enumerate(rows, start=1):
        parsed = parse(wire_dumps(row), limits)
        if isinstance(parsed, InvalidArticle):
            invalid.append((number, str(parsed)))
        else:
            valid.append(parsed)
    if progress and invalid:
        progress(len(invalid))
    chunks = []
    started = time.perf_counter()
    for start in range(0, len(valid), batch_size):
        batch = valid[start : start + batch_size]
        chunks.append(embedder.encode([p.text for p in batch]))
        if progress:
            progress(len(batch))
    seconds = time.perf_counter() - started
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    articles = [p.article for p in valid]
    return EmbeddedStream(
        articles,
        vectors,
        replay_timestamps(articles),
        invalid,
        seconds,
        [p.evidence for p in valid],
    )


def cluster_stream(stream: EmbeddedStream, params: ClusterParams) -> ClusterRun:
    """One online pass of the cluster stage (streams.stages.cluster, as the worker runs it)
    over an embedded stream, in order."""
    engine = StoryEngine(params)
    assignments: list[Assignment] = []
    merges: list[StoryMerge] = []
    started = time.perf_counter()
    evidence: Sequence[TextEvidence | None] = stream.evidence or [None] * len(stream.articles)
    for article, vector, stamp, text_evidence in zip(
        stream.articles, stream.vectors, stream.stamps_ms, evidence, strict=True
    ):
        out = cluster(engine, ClusterInput(article, vector, stamp / 1000.0, text_evidence))
        if out.assignment is not None:
            assignments.append(out.assignment)
        merges.extend(out.changes.merges)
    seconds = time.perf_counter() - started
    return ClusterRun(assignments, stream.invalid, stream.embed_seconds, seconds, merges)


def cluster_articles(
    rows: Sequence[dict[str, Any]],
    embedder: Embedder,
    params: ClusterParams,
    *,
    limits: Limits,
    batch_size: int = setting_default("embed_batch_size"),
    progress: Callable[[int], None] | None = None,
) -> ClusterRun:
    """Embed and cluster ``rows`` in file order, one online pass."""
    stream = embed_rows(rows, embedder, limits=limits, batch_size=batch_size, progress=progress)
    return cluster_stream(stream, params)
