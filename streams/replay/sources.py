"""Turn history records into what the engine takes: article, vector, stream time, evidence.

``articles-embedded`` holds all of it (clustering speed); ``articles`` holds the raw article,
which is parsed and embedded again (model speed) when the embedded history is gone or was
made by another model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from streams.engine.article import Article
from streams.engine.evidence import TextEvidence
from streams.engine.validation import InvalidArticle, article_from_mapping, parse_article
from streams.engine.vectors import Vector, decode_vector
from streams.replay.reading import Record
from streams.stream_time import StreamClock

__all__ = ["Item", "ModelMismatch", "Skipped", "embedded_items", "raw_items"]


@dataclass(frozen=True, slots=True)
class Item:
    """One article as the cluster stage would see it."""

    article: Article
    vector: Vector
    stream_time: float  # epoch seconds, as the embed stage reads it (streams.stream_time)
    evidence: TextEvidence | None
    kafka_ms: int  # the record's Kafka time


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record the live pipeline dead-lettered (or would): counted, not processed."""

    offset: int
    reason: str


class ModelMismatch(Exception):
    """The embedded history was made by another model than the run's."""

    def __init__(self, found: str) -> None:
        super().__init__(found)
        self.found = found


async def embedded_items(
    records: AsyncIterator[Record], model: str
) -> AsyncIterator[Item | Skipped]:
    """Decode ``articles-embedded`` records. Raises :class:`ModelMismatch` on the first record
    if it names another model than ``model`` (nothing is processed yet then)."""
    first = True
    async for record in records:
        try:
            # The JSON straight into the engine's types: what EmbeddedArticle.to_article /
            # text_evidence do, without building the Faust record (a third of the decoding).
            data = json.loads(record.value or b"")
            found = data.get("model")
            if first and found is not None and found != model:
                raise ModelMismatch(str(found))
            first = False
            yield Item(
                article_from_mapping(data),
                decode_vector(data["vector"]),
                float(data["record_ts"]),
                _evidence(data),
                record.timestamp,
            )
        except ModelMismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - a poison record is skipped, as live
            first = False
            yield Skipped(record.offset, f"{type(exc).__name__}: {exc}")


def _evidence(data: dict[str, object]) -> TextEvidence | None:
    counts, entities, key = data.get("term_counts"), data.get("entities"), data.get("content_key")
    if not isinstance(counts, dict) or not isinstance(entities, list) or not isinstance(key, str):
        return None
    return TextEvidence(dict(counts), frozenset(entities), key)


async def raw_items(
    records: AsyncIterator[Record],
    encode: Callable[[list[str]], np.ndarray],
    *,
    max_bytes: int,
    max_text_bytes: int,
    max_chars: int,
    batch_size: int,
    clock: StreamClock,
) -> AsyncIterator[Item | Skipped]:
    """Parse and embed ``articles`` records in batches, as the embed stage does: the same
    size budget, and the same stream time (a time past ``clock``'s bound is cut to it)."""
    batch: list[tuple[Record, Article]] = []

    def flush() -> list[Item]:
        if not batch:
            return []
        vectors = encode([a.embed_text(max_chars) for _, a in batch])
        items = [
            Item(
                a,
                v,
                clock.read(r.headers, r.timestamp, r.key).seconds,
                TextEvidence.of(a.title, a.text),
                r.timestamp,
            )
            for (r, a), v in zip(batch, vectors, strict=True)
        ]
        batch.clear()
        return items

    async for record in records:
        try:
            batch.append((record, parse_article(record.value, max_bytes, max_text_bytes)))
        except InvalidArticle as exc:
            yield Skipped(record.offset, str(exc))
            continue
        if len(batch) >= batch_size:
            for item in flush():
                yield item
    for item in flush():
        yield item
