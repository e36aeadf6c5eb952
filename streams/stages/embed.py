"""The validate+embed stage: raw ``articles`` records in; per record either an embedded
article (article, vector, stream time, text evidence) or the reason it is refused.

Two steps around the model, so a runner chooses how to call it (the worker on its model
thread, replay inline): :func:`parse` each record, encode the valid ones' ``text`` in one
batch, then :func:`embedded` each with its vector. State: none (the clock is read-only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from config.groups import EmbedSettings
from streams.engine.article import Article
from streams.engine.evidence import TextEvidence
from streams.engine.validation import InvalidArticle, parse_article
from streams.engine.vectors import Vector
from streams.stream_time import Headers, StreamClock, StreamTime

__all__ = ["Embedded", "Limits", "Parsed", "embedded", "parse"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """The size budget of a record and of what the model reads."""

    max_record_bytes: int
    max_text_bytes: int
    max_chars: int  # of the text the model reads (and the story event carries)

    @classmethod
    def from_settings(cls, embed: EmbedSettings) -> Limits:
        return cls(embed.max_record_bytes, embed.max_article_text_bytes, embed.embed_max_chars)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid record: its article, the text the model reads and the text's evidence."""

    article: Article
    text: str
    evidence: TextEvidence


@dataclass(frozen=True, slots=True)
class Embedded:
    """One article as the cluster stage takes it."""

    article: Article
    vector: Vector
    stream_time: StreamTime  # ``.seconds`` is what the cluster stage reads
    kafka_time: float  # the record's Kafka time (s), cut to the clock's bound like the stream time
    evidence: TextEvidence


def parse(value: Any, limits: Limits) -> Parsed | InvalidArticle:
    """The parsed record, or why not. Anything a record can make the parsing raise is caught
    here, per record: a poison record is a dead letter, never a crash loop of a runner."""
    try:
        article = parse_article(value, limits.max_record_bytes, limits.max_text_bytes)
        text = article.embed_text(limits.max_chars)
        return Parsed(article, text, TextEvidence.of(article.title, article.text))
    except InvalidArticle as error:
        return error
    except Exception as exc:
        logger.exception("parsing a record failed unexpectedly")
        return InvalidArticle(
            "unparseable", f"{type(exc).__name__}: {exc}; report it with this dead letter"
        )


def embedded(
    parsed: Parsed,
    vector: Vector,
    clock: StreamClock,
    *,
    headers: Headers | None,
    kafka_ms: float,
    key: bytes | None,
    kafka_s: float | None = None,
) -> Embedded:
    """``parsed`` with its vector and the stream time of its record (Kafka time ``kafka_ms``;
    ``kafka_s``, the same in seconds as the runner's client gives it, default ``kafka_ms /
    1000``). A time past ``clock``'s bound is cut to it; the Kafka time too: a record stamped
    2100 would otherwise stamp its derived records 2100 and keep their log segments past any
    retention."""
    stream_time = clock.read(headers, kafka_ms, key)
    kafka_time = min(kafka_ms / 1000.0 if kafka_s is None else float(kafka_s), clock.latest())
    return Embedded(parsed.article, vector, stream_time, kafka_time, parsed.evidence)
