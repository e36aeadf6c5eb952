"""Publish a JSONL file of articles to Kafka, keeping the file's stream time in a header."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from config.settings import load_settings
from streams.engine.article import Article
from streams.engine.offline import read_jsonl, replay_timestamps
from streams.engine.validation import InvalidArticle, article_from_mapping
from streams.exceptions import BrokerUnavailable
from streams.stream_time import replay_headers, replay_time_key

__all__ = ["produce_file", "produce_rows"]


def produce_rows(
    rows: list[dict],
    bootstrap: str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: bool = False,
    auth: Mapping[str, str] | None = None,
    replay_key: bytes | None = None,
) -> int:
    """Send ``rows`` in order, keyed by id; returns how many were sent. Rows that are not
    valid articles are sent as they are (the worker dead-letters them). Each valid one
    carries its stream time in a replay header signed with ``replay_key`` (default: the
    deployment's, from the settings), so the worker keeps the file's clock."""
    parsed: list[Article | None] = []
    for row in rows:
        try:
            parsed.append(article_from_mapping(row))
        except InvalidArticle:
            parsed.append(None)
    valid = [a for a in parsed if a is not None]
    stamps = iter(replay_timestamps(valid))
    if replay_key is None:
        replay_key = replay_time_key(load_settings())
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
            **(auth or {}),  # Settings.kafka_client_auth: SASL when configured
        )
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"cannot connect to Kafka at {bootstrap}: {exc}; run "
            "`storywatch kafka start` or fix STORYWATCH_KAFKA_BOOTSTRAP"
        ) from exc
    started = time.monotonic()
    try:
        for number, (row, article) in enumerate(
            tqdm(list(zip(rows, parsed, strict=True)), unit="article", disable=not progress),
            start=1,
        ):
            key = str(row.get("id", "")).encode() or None
            headers = [] if article is None else replay_headers(replay_key, key, next(stamps))
            producer.send(topic, key=key, value=json.dumps(row).encode(), headers=headers)
            if rate > 0:
                delay = started + number / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return len(rows)


def produce_file(
    path: Path,
    bootstrap: str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: bool = False,
    auth: Mapping[str, str] | None = None,
) -> int:
    """:func:`produce_rows` over a JSONL file."""
    return produce_rows(read_jsonl(path), bootstrap, topic, rate=rate, progress=progress, auth=auth)
