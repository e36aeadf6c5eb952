"""Publish a JSONL file of articles to Kafka, keeping the file's stream time in a header."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafka.errors import KafkaError
from tqdm import tqdm

from config.settings import load_settings
from streams.engine.article import Article
from streams.engine.offline import read_jsonl, replay_timestamps
from streams.engine.validation import InvalidArticle, article_from_mapping
from streams.exceptions import BrokerUnavailable
from streams.kafka.connection import KafkaConnection
from streams.stream_time import replay_headers, replay_time_key

__all__ = ["produce_file", "produce_rows"]


def produce_rows(
    rows: list[dict],
    target: KafkaConnection | str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: bool = False,
    replay_key: bytes | None = None,
) -> int:
    """Send ``rows`` in order, keyed by id, over ``target`` (a connection, or a PLAINTEXT
    ``host:port``); returns how many were sent. Rows that are not valid articles are sent as
    they are (the worker dead-letters them). Each valid one carries its stream time in a
    replay header signed with ``replay_key`` (default: the deployment's, from the settings),
    so the worker keeps the file's clock."""
    connection = KafkaConnection.of(target)
    parsed: list[Article | None] = []
    for row in rows:
        try:
            parsed.append(article_from_mapping(row))
        except InvalidArticle:
            parsed.append(None)
    valid = [a for a in parsed if a is not None]
    stamps = iter(replay_timestamps(valid))
    if replay_key is None:
        replay_key = replay_time_key(load_settings().keys)
    try:
        producer = connection.producer(linger_ms=5, acks="all", enable_idempotence=True)
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"cannot connect to Kafka at {connection.bootstrap}: {exc}; run "
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
    target: KafkaConnection | str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: bool = False,
) -> int:
    """:func:`produce_rows` over a JSONL file."""
    return produce_rows(read_jsonl(path), target, topic, rate=rate, progress=progress)
