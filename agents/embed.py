"""Agent: validate raw articles, send invalid ones to the DLQ, embed the rest in batches."""

from __future__ import annotations

import asyncio
import base64
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faust import StreamT
from faust.types import EventT

from streams.app import app, embedder, metrics, settings, topics
from streams.engine.article import Article
from streams.engine.validation import InvalidArticle, parse_article
from streams.engine.vectors import encode_vector
from streams.records import REPLAY_TIME_HEADER, EmbeddedArticle

__all__ = ["dead_letter", "embed_articles"]

# One thread: the model is not re-entrant and torch already uses every core inside a batch.
_executor: ThreadPoolExecutor | None = None


def _model_executor() -> ThreadPoolExecutor:
    global _executor  # noqa: PLW0603 - created on first use, never at import
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storywatch-embed")
    return _executor


def dead_letter(event: EventT, error: InvalidArticle) -> dict[str, Any]:
    """The DLQ record: the reason, where it came from, and the original bytes."""
    raw = event.value if isinstance(event.value, bytes) else b""
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    message = event.message
    return {
        "reason": error.reason, "error": str(error), "topic": message.topic,
        "partition": message.partition, "offset": message.offset,
        "timestamp": message.timestamp,
        "key": base64.b64encode(message.key).decode() if isinstance(message.key, bytes) else None,
        "value_b64": base64.b64encode(raw).decode(), "value_text": text,
    }


def _stream_time(event: EventT) -> float:
    """The replay header's time if present, else the Kafka timestamp (epoch seconds)."""
    headers = event.headers
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    for name, value in pairs:
        if name == REPLAY_TIME_HEADER and value:
            return int(value) / 1000.0
    return float(event.message.timestamp)


@app.agent(topics.articles)
async def embed_articles(stream: StreamT[bytes]) -> None:
    """Batch articles (size or time bound), embed off the event loop, forward or dead-letter."""
    loop = asyncio.get_running_loop()
    async for events in stream.take_events(settings.embed_batch_size, settings.embed_max_wait_s):
        batch: list[tuple[Article, EventT]] = []
        for event in events:
            metrics.articles_consumed.inc()
            try:
                batch.append((parse_article(event.value, settings.max_record_bytes), event))
            except InvalidArticle as error:
                metrics.articles_invalid.labels(error.reason).inc()
                await topics.dlq.send(key=event.message.key, value=dead_letter(event, error))
        if not batch:
            continue
        texts = [article.embed_text(settings.embed_max_chars) for article, _ in batch]
        started = time.perf_counter()
        vectors = await loop.run_in_executor(_model_executor(), embedder.encode, texts)
        metrics.embedding_duration.observe(time.perf_counter() - started)
        metrics.embedding_batch_size.observe(len(batch))
        for (article, event), vector in zip(batch, vectors, strict=True):
            record = EmbeddedArticle.build(article, encode_vector(vector), _stream_time(event),
                                           event.message.timestamp)
            await topics.embedded.send(value=record)
