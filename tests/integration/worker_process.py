"""Reading the topics of a worker the tests run (the worker itself: streams.worker_run)."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.worker_run import TOPIC_NAMES, WorkerRun

__all__ = [
    "TOPIC_NAMES",
    "WorkerRun",
    "broker_lag",
    "read_to_end",
    "read_topic",
    "records_to_end",
]


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float) -> list[Any]:
    """Read JSON values from the start of ``topic`` until ``expect`` arrived or time is up."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        value_deserializer=json.loads,
    )
    values: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expect and time.monotonic() < deadline:
            for message in consumer:
                values.append(message.value)
                if len(values) >= expect:
                    break
    finally:
        consumer.close()
    return values


def read_to_end(
    bootstrap: str, topic: str, *, timeout_s: float = 120.0, keyed: bool = False
) -> list[Any]:
    """Every JSON value ``topic`` holds now (``keyed``: ``(key as text, value)`` pairs); see
    ``records_to_end``."""
    records = records_to_end(bootstrap, topic, timeout_s=timeout_s)
    if keyed:
        return [(r.key and r.key.decode(), r.value) for r in records]
    return [r.value for r in records]


def records_to_end(
    bootstrap: str, topic: str, *, timeout_s: float = 120.0, decode: bool = True
) -> list[ConsumerRecord]:
    """Every record ``topic`` holds now (key, offset, timestamp, the value JSON-decoded, or
    its bytes as written when not ``decode``):
    reads until each partition's position reaches the end offset taken at the start. A
    deadline that passes first FAILS (a read cut short by a slow machine must not pass for
    records the pipeline lost)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        value_deserializer=json.loads if decode else None,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    values: list[ConsumerRecord] = []
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s}s"
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(batch)
    finally:
        consumer.close()
    return values


def broker_lag(run: WorkerRun, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """End offset minus the group's committed offset, asked of the broker directly."""
    admin = KafkaAdminClient(bootstrap_servers=run.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=run.bootstrap)
    try:
        group = run.env["STORYWATCH_APP_ID"]
        committed = admin.list_group_offsets(group)[group]
        tps = [TopicPartition(t, p) for t, p in partitions]
        ends = consumer.end_offsets(tps)
        return {
            (tp.topic, tp.partition): ends[tp] - (committed[tp].offset if tp in committed else 0)
            for tp in tps
        }
    finally:
        admin.close()
        consumer.close()
