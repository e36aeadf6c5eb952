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
from streams.engine.validation import InvalidArticle
from streams.engine.vectors import Vector
from streams.kafka.window import Record
from streams.stages.cluster import ClusterInput
from streams.stages.embed import Limits, Parsed, embedded, parse
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
            # The JSON straight into the engine's types, without building the Faust record
            # (a third of the decoding).
            data = json.loads(record.value or b"")
            found = data.get("model")
            if first and found is not None and found != model:
                raise ModelMismatch(str(found))
            first = False
            one = ClusterInput.from_mapping(data)  # the cluster stage's own decoding
            yield Item(one.article, one.vector, one.stream_time, one.evidence, record.timestamp)
        except ModelMismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - a poison record is skipped, as live
            first = False
            yield Skipped(record.offset, f"{type(exc).__name__}: {exc}")


async def raw_items(
    records: AsyncIterator[Record],
    encode: Callable[[list[str]], np.ndarray],
    *,
    limits: Limits,
    batch_size: int,
    clock: StreamClock,
) -> AsyncIterator[Item | Skipped]:
    """``articles`` records through the embed stage (streams.stages.embed) in batches: the
    same parse and size budget, and the same stream time, as the worker."""
    batch: list[tuple[Record, Parsed]] = []

    def flush() -> list[Item]:
        if not batch:
            return []
        vectors = encode([parsed.text for _, parsed in batch])
        items = []
        for (r, parsed), vector in zip(batch, vectors, strict=True):
            out = embedded(
                parsed, vector, clock, headers=r.headers, kafka_ms=r.timestamp, key=r.key
            )
            items.append(
                Item(out.article, out.vector, out.stream_time.seconds, out.evidence, r.timestamp)
            )
        batch.clear()
        return items

    async for record in records:
        parsed = parse(record.value, limits)
        if isinstance(parsed, InvalidArticle):
            yield Skipped(record.offset, str(parsed))
            continue
        batch.append((record, parsed))
        if len(batch) >= batch_size:
            for item in flush():
                yield item
    for item in flush():
        yield item
