"""Agent: validate raw articles, send invalid ones to the DLQ, embed the rest in batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from faust import StreamT
from faust.types import EventT

from agents.glue import StageAgent
from streams.contracts.records import EmbeddedArticle
from streams.engine.validation import InvalidArticle, derived_record_max_bytes
from streams.engine.vectors import encode_vector
from streams.pipeline import Pipeline
from streams.stages.embed import Limits, Parsed, embedded, parse
from streams.stream_time import StreamClock
from streams.wire_json import dumps as wire_dumps

__all__ = ["EmbedAgent", "register"]

logger = logging.getLogger(__name__)

# Why 0.5 s .. 30 s: a broker restart takes seconds; retrying a failed send sooner only
# floods the log, and waiting longer than 30 s leaves a recovered broker idle.
_SEND_RETRY_FIRST_S = 0.5
_SEND_RETRY_MAX_S = 30.0
_STAGE = "embed"


@dataclass(frozen=True)
class _Parsed:
    """A valid record (the stage's parse) and its input event."""

    parsed: Parsed
    event: EventT

    @property
    def text(self) -> str:
        return self.parsed.text


@dataclass
class _Batch:
    """One batch of input events: the valid ones, the refused ones and their encoding."""

    events: list[EventT]
    valid: list[_Parsed] = field(default_factory=list)
    refused: list[tuple[EventT, InvalidArticle]] = field(default_factory=list)
    encoding: asyncio.Future[Any] | None = None


def _log_failure(task: asyncio.Task[None]) -> None:
    """A batch that failed to forward (the agent also re-raises it on its next batch)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("forwarding embedded articles failed", exc_info=task.exception())


class EmbedAgent(StageAgent):
    """The embed stage on ``articles``: its parts come from the pipeline; the stream clock is
    built on the first batch (it reads the deployment's key: no I/O when registering)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self.embed = pipeline.settings.embed
        self.keys = pipeline.settings.keys
        self.kafka = pipeline.settings.kafka
        self.embedder = pipeline.embedder
        self.model_thread = pipeline.model_thread
        self.dead_letters = pipeline.dead_letters
        self.limits = Limits.from_settings(self.embed)
        self._clock: StreamClock | None = None

    def stream_clock(self) -> StreamClock:
        if self._clock is None:
            self._clock = StreamClock.from_settings(self.embed, self.keys)
        return self._clock

    async def _dead_letter(self, event: EventT, reason: str, error: str) -> Awaitable[Any]:
        return await self.dead_letters.send(
            reason=reason,
            error=error,
            stage=_STAGE,
            message=event.message,
            value=event.value if isinstance(event.value, bytes) else None,
        )

    def _parse(self, event: EventT) -> _Parsed | InvalidArticle:
        """The parsed record, or why not (the embed stage's parse: never raises)."""
        parsed = parse(event.value, self.limits)
        return parsed if isinstance(parsed, InvalidArticle) else _Parsed(parsed, event)

    def _timed_encode(self, texts: list[str]) -> Any:
        started = time.perf_counter()
        vectors = self.embedder.encode(texts)
        self.metrics.embedding_duration.observe(time.perf_counter() - started)
        return vectors

    def _encode_soon(self, texts: list[str]) -> asyncio.Future[Any]:
        """Queue ``texts`` on the model's thread; the event loop goes on meanwhile."""
        return self.model_thread.run(self._timed_encode, texts)

    async def _embedded(
        self, batch: _Batch, sent: list[Awaitable[Any]]
    ) -> list[tuple[_Parsed, Any]]:
        """The batch's vectors; if the model fails on the batch, embed one by one and
        dead-letter the articles it fails on, so one poisoned text never stops the stream."""
        assert batch.encoding is not None
        try:
            vectors = await batch.encoding
        except Exception:
            logger.exception(
                "embedding a batch of %d failed; retrying one by one", len(batch.valid)
            )
            embedded = []
            for parsed in batch.valid:
                try:
                    one = await self._encode_soon([parsed.text])
                except Exception as exc:  # noqa: BLE001 - reported in the dead letter
                    error = f"{type(exc).__name__}: {exc}; fix the text or model"
                    sent.append(await self._dead_letter(parsed.event, "embedding_failed", error))
                else:
                    embedded.append((parsed, one[0]))
            return embedded
        self.metrics.embedding_batch_size.observe(len(batch.valid))
        return list(zip(batch.valid, vectors, strict=True))

    async def _forward(self, batch: _Batch, sent: list[Awaitable[Any]]) -> None:
        """Send the batch's dead letters and embedded records; ``sent`` collects the futures
        that resolve when the broker has each record."""
        for event, error in batch.refused:
            sent.append(await self._dead_letter(event, error.reason, str(error)))
        if batch.encoding is None:
            return
        clock = self.stream_clock()
        metrics = self.metrics
        for parsed, vector in await self._embedded(batch, sent):
            event = parsed.event
            message = event.message
            out = embedded(
                parsed.parsed,
                vector,
                clock,
                headers=message.headers,
                kafka_ms=message.timestamp * 1000.0,
                key=message.key,
                kafka_s=message.timestamp,
            )
            stream_time, kafka_time, article = out.stream_time, out.kafka_time, out.article
            if stream_time.header == "unsigned":
                metrics.replay_header_ignored.inc()
            if stream_time.capped:
                metrics.stream_time_capped.inc()
                logger.warning(
                    "article %s claims stream time %.0f, past this worker's clock + "
                    "STORYWATCH_CLOCK_TOLERANCE_MINUTES: processed at %.0f (fix the "
                    "producer's clock)",
                    article.id,
                    stream_time.claimed,
                    stream_time.seconds,
                )
            if article.truncated_from is not None:
                metrics.articles_truncated.inc()
            record = EmbeddedArticle.build(
                article,
                encode_vector(vector),
                stream_time.seconds,
                kafka_time,
                out.evidence,
                model=self.embed.model,
                claimed_time=stream_time.claimed if stream_time.capped else None,
            )
            size = len(wire_dumps(record.to_representation()))
            if size > derived_record_max_bytes(self.embed):  # pragma: no cover - budget holds
                too_large = (
                    f"embedded record of {size} bytes; lower STORYWATCH_MAX_ARTICLE_TEXT_BYTES"
                )
                sent.append(await self._dead_letter(event, "derived_too_large", too_large))
                continue
            # Stamped with the article's own Kafka time: `storywatch replay` finds an article's
            # embedded record by the time it was published to `articles`.
            sent.append(await self.topics.embedded.send(value=record, timestamp=kafka_time))

    async def _settle(self, stream: StreamT[bytes], batch: _Batch) -> None:
        """Forward the batch, wait until the broker acknowledged every record derived from it
        (dead letters included), then ack the batch's input events: acks follow effects, so a
        worker killed before this point re-reads the batch. A failed send (broker down,
        timeout) is retried with backoff while the events stay unacked: the stream waits,
        nothing is lost (a record sent twice is dropped by id in the cluster stage)."""
        delay = _SEND_RETRY_FIRST_S
        while True:
            sent: list[Awaitable[Any]] = []
            try:
                await self._forward(batch, sent)
                await asyncio.gather(*sent)
                break
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                logger.warning(
                    "sending embedded articles failed (%s: %s); retrying in %.1f s: "
                    "check that the broker at %s is up",
                    type(exc).__name__,
                    exc,
                    delay,
                    self.kafka.bootstrap,
                )
                await asyncio.sleep(delay)
                delay = min(_SEND_RETRY_MAX_S, delay * 2)
        for event in batch.events:
            await stream.ack(event)

    async def embed_articles(self, stream: StreamT[bytes]) -> None:
        """Batch articles (size or time bound), embed off the event loop, forward or
        dead-letter.

        Two batches overlap: while the model encodes one, the event loop sends the previous
        one's records and gathers the next, so the model does not wait on Kafka between
        batches. At most one batch waits behind the one encoding (back-pressure on the
        consumer). Input events are acked only once everything derived from them is on the
        broker (``_settle``); Faust commits the highest offset below which every event is
        acked, so offsets commit in order even though batches overlap.
        """
        forwarding: asyncio.Task[None] | None = None
        # noack_take: the events (the DLQ needs each record's coordinates), acked by _settle.
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            self.embed.embed_batch_size, self.embed.embed_max_wait_s
        ):
            batch = _Batch(list(events))
            for event in events:
                self.metrics.articles_consumed.inc()
                parsed = self._parse(event)
                if isinstance(parsed, InvalidArticle):
                    batch.refused.append((event, parsed))
                else:
                    batch.valid.append(parsed)
            if batch.valid:  # queued behind the batch the model may be encoding
                batch.encoding = self._encode_soon([parsed.text for parsed in batch.valid])
            if forwarding is not None:
                # The previous batch, encoded and sent while this one waits for the model:
                # one batch forwards at a time, so ``articles-embedded`` keeps the input order.
                await forwarding
            forwarding = asyncio.ensure_future(self._settle(stream, batch))
            forwarding.add_done_callback(_log_failure)


def register(pipeline: Pipeline) -> EmbedAgent:
    """Declare the embed agent on ``articles`` (named as before the composition root, so the
    worker's agents keep their names)."""
    agent = EmbedAgent(pipeline)
    agent.agent = pipeline.app.agent(pipeline.topics.articles, name="agents.embed.embed_articles")(
        agent.embed_articles
    )
    return agent
