"""Agent: validate raw articles, send invalid ones to the DLQ, embed the rest in batches."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faust import StreamT
from faust.types import EventT

from streams.app import app, embedder, metrics, settings, topics
from streams.engine.article import Article
from streams.engine.evidence import TextEvidence
from streams.engine.validation import InvalidArticle, parse_article
from streams.engine.vectors import encode_vector
from streams.records import REPLAY_TIME_HEADER, EmbeddedArticle

__all__ = ["dead_letter", "embed_articles"]

logger = logging.getLogger(__name__)

# Why 64 KiB: a readable copy for people browsing the DLQ; bigger records keep only base64.
_INLINE_TEXT_BYTES = 64 * 1024
# Why 64 KiB: room for the reason, error text and Kafka coordinates around the copy.
_ENVELOPE_BYTES = 64 * 1024

# One thread: the model is not re-entrant and torch already uses every core inside a batch.
_executor: ThreadPoolExecutor | None = None


def _model_executor() -> ThreadPoolExecutor:
    global _executor  # noqa: PLW0603 - created on first use, never at import
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storywatch-embed")
    return _executor


def dead_letter(event: EventT, error: InvalidArticle, max_bytes: int) -> dict[str, Any]:
    """The DLQ record: the reason, where it came from, and the original bytes (base64; also as
    text when short and UTF-8). Past ``max_bytes`` the copy is cut and flagged ``truncated``;
    the whole record stays in its source topic at the offset given."""
    raw = event.value if isinstance(event.value, bytes) else b""
    text: str | None = None
    if len(raw) <= _INLINE_TEXT_BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            text = raw.decode("utf-8")
    keep = (max_bytes - _ENVELOPE_BYTES) * 3 // 4
    message = event.message
    return {
        "reason": error.reason,
        "error": str(error),
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": base64.b64encode(message.key).decode() if isinstance(message.key, bytes) else None,
        "value_b64": base64.b64encode(raw[:keep]).decode(),
        "value_text": text,
        "truncated": len(raw) > keep,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _stream_time(event: EventT) -> float:
    """The replay header's time if present, else the Kafka timestamp (epoch seconds)."""
    headers = event.headers
    pairs: Iterable[tuple[str, bytes]] = (
        headers.items() if isinstance(headers, dict) else (headers or [])
    )
    for name, value in pairs:
        if name == REPLAY_TIME_HEADER and value:
            return int(value) / 1000.0
    return float(event.message.timestamp)


async def _dead_letter(event: EventT, error: InvalidArticle) -> None:
    metrics.articles_invalid.labels(error.reason).inc()
    record = dead_letter(event, error, settings.dlq_max_message_bytes)
    await topics.dlq.send(key=event.message.key, value=record)


def _timed_encode(texts: list[str]) -> Any:
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    metrics.embedding_duration.observe(time.perf_counter() - started)
    return vectors


def _encode_soon(texts: list[str]) -> asyncio.Future[Any]:
    """Queue ``texts`` on the model's thread; the event loop goes on meanwhile."""
    return asyncio.get_running_loop().run_in_executor(_model_executor(), _timed_encode, texts)


async def _embedded(
    batch: list[tuple[Article, EventT]], texts: list[str], encoding: asyncio.Future[Any]
) -> list[tuple[Article, EventT, Any]]:
    """The batch's vectors; if the model fails on the batch, embed one by one and dead-letter
    the articles it fails on, so one poisoned text never stops the stream."""
    try:
        vectors = await encoding
    except Exception:
        logger.exception("embedding a batch of %d failed; retrying one by one", len(batch))
        embedded = []
        for (article, event), text in zip(batch, texts, strict=True):
            try:
                one = await _encode_soon([text])
            except Exception as exc:  # noqa: BLE001 - reported in the dead letter
                await _dead_letter(
                    event,
                    InvalidArticle(
                        "embedding_failed", f"{type(exc).__name__}: {exc}; fix the text or model"
                    ),
                )
            else:
                embedded.append((article, event, one[0]))
        return embedded
    metrics.embedding_batch_size.observe(len(batch))
    return [(a, e, v) for (a, e), v in zip(batch, vectors, strict=True)]


async def _forward(
    batch: list[tuple[Article, EventT]],
    texts: list[str],
    encoding: asyncio.Future[Any],
) -> None:
    """Send the batch's embedded records once its vectors are ready."""
    for article, event, vector in await _embedded(batch, texts, encoding):
        record = EmbeddedArticle.build(
            article,
            encode_vector(vector),
            _stream_time(event),
            event.message.timestamp,
            TextEvidence.of(article.title, article.text),
        )
        await topics.embedded.send(value=record)


def _log_failure(task: asyncio.Task[None]) -> None:
    """A batch that failed to forward (the agent also re-raises it on its next batch)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("forwarding embedded articles failed", exc_info=task.exception())


@app.agent(topics.articles)
async def embed_articles(stream: StreamT[bytes]) -> None:
    """Batch articles (size or time bound), embed off the event loop, forward or dead-letter.

    Two batches overlap: while the model encodes one, the event loop sends the previous
    one's records and gathers the next, so the model does not wait on Kafka between batches.
    At most one batch waits behind the one encoding (back-pressure on the consumer).
    """
    forwarding: asyncio.Task[None] | None = None
    # take_events (not take): the DLQ needs each record's topic/partition/offset.
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.embed_batch_size, settings.embed_max_wait_s
    ):
        batch: list[tuple[Article, EventT]] = []
        for event in events:
            metrics.articles_consumed.inc()
            try:
                batch.append((parse_article(event.value, settings.max_record_bytes), event))
            except InvalidArticle as error:
                await _dead_letter(event, error)
        if not batch:
            continue
        texts = [article.embed_text(settings.embed_max_chars) for article, _ in batch]
        encoding = _encode_soon(texts)  # queued behind the batch the model may be encoding
        if forwarding is not None:
            # The previous batch, encoded and sent while this one waits for the model: one
            # batch forwards at a time, so ``articles-embedded`` keeps the input order.
            await forwarding
        forwarding = asyncio.ensure_future(_forward(batch, texts, encoding))
        forwarding.add_done_callback(_log_failure)
