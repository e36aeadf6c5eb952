"""The two Kafka readers every other part uses, against the real broker: a window of a topic
(streams/kafka/window.py: replay, `storywatch history`, `GET /api/alerts`) and a topic
followed into memory (streams/kafka/follower.py: the subscriptions store, the read model,
the feeds views), including a broker stopped and started under a follower."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from kafka.admin import NewTopic

from config.groups import KafkaSettings
from config.settings import Settings
from streams.alert_history import AlertReader
from streams.exceptions import TopicNotFound
from streams.kafka.connection import KafkaConnection
from streams.kafka.follower import Message, TopicFollower, read_to_end
from streams.kafka.window import TopicReader
from streams.replay.history import read_history
from streams.time_ranges import TimeRange

pytestmark = pytest.mark.kafka

# Why 2026-12-01T00:00Z: record times the tests set themselves, far from "now".
T0 = 1_796_083_200_000


def _topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"layer-{uuid.uuid4().hex[:10]}"
    admin = KafkaConnection(bootstrap).admin()
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def _send(bootstrap: str, topic: str, records: list[tuple[int, int, Any, Any]]) -> None:
    """(partition, time ms, key, value) each; None value: a tombstone."""
    producer = KafkaConnection(bootstrap).producer()
    try:
        for partition, at_ms, key, value in records:
            producer.send(
                topic,
                key=None if key is None else json.dumps(key).encode(),
                value=None if value is None else json.dumps(value).encode(),
                partition=partition,
                timestamp_ms=at_ms,
            )
        producer.flush()
    finally:
        producer.close()


def _kafka(bootstrap: str) -> KafkaSettings:
    return Settings(kafka_bootstrap=bootstrap).kafka


# --- a window of a topic ------------------------------------------------------------------


async def test_a_window_reads_exactly_its_records_merged_by_time(kafka_bootstrap: str) -> None:
    """Two partitions, times interleaved, two records stamped out of order: the window is
    bracketed by offsets-for-times, then each record's own time decides; partitions are
    merged by time; the plan names what the topic keeps."""
    topic = _topic(kafka_bootstrap, partitions=2)
    records = [(i % 2, T0 + i * 1000, f"k{i}", {"n": i}) for i in range(20)]
    # On partition 0 after 6 (6 s): one stamped inside the window, one before it.
    records[7:7] = [(0, T0 + 4500, "in", {"n": "in"}), (0, T0 + 1, "early", {"n": "early"})]
    _send(kafka_bootstrap, topic, records)
    async with TopicReader(_kafka(kafka_bootstrap)) as reader:
        plan = await reader.plan(topic, TimeRange(T0 + 3000, T0 + 9000))
        got = [json.loads(r.value or b"")["n"] async for r in reader.records(plan)]
        assert got == [3, 4, 5, 6, "in", 7, 8]
        assert plan.earliest_ms == T0 and plan.latest_ms == T0 + 19_000
        assert not plan.clipped and (await reader.plan(topic, TimeRange(T0 - 1, None))).clipped
        tp = TopicPartition(topic, 1)
        assert await reader.offset_at(tp, T0 + 4000) == 2  # the first at or after: 5 at 5 s
        assert await reader.offset_at(tp, T0 + 99_000) == await reader.end_offset(tp) == 10
        assert await reader.offset_at(tp, None) == await reader.first_offset(tp) == 0
        capped = [r.offset async for r in reader.span(tp, 0, 10, most=3)]
        assert capped == [0, 1, 2]
        assert not await reader.exists("no-such-topic-" + topic)
        with pytest.raises(TopicNotFound, match="does not exist"):
            await reader.plan("no-such-topic-" + topic, TimeRange(None, None))


def _alert(alert_id: str, owner: str, n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": alert_id,
        "type": "storywatch.subscription.match",
        "subject": f"st-{n}",
        "data": {"owner": owner, "headline": f"headline {n}"},
    }


async def test_history_and_api_alerts_give_one_answer_about_re_sent_copies(
    kafka_bootstrap: str,
) -> None:
    """A worker killed between sending alerts and writing its state sends them again (same
    CloudEvent id). `storywatch history alerts` and `GET /api/alerts` (AlertReader.history,
    what the view calls) read the same window of the same topic: both serve each id once,
    the first copy, in the same order; paging the API with its cursor gives the same."""
    topic = _topic(kafka_bootstrap)
    ids = [f"s:st-{n}:new_story" for n in range(8)]
    sent = [_alert(ids[n], "alice", n) for n in range(8)]
    resent = [sent[2], sent[3], sent[4]]  # the batch sent again after the restart
    later = [_alert("s:st-9:new_story", "alice", 9), sent[7]]  # a copy far behind
    values = [*sent, *resent, *later]
    _send(kafka_bootstrap, topic, [(0, T0 + i * 10, None, v) for i, v in enumerate(values)])
    settings = _kafka(kafka_bootstrap)
    expected = [*ids, "s:st-9:new_story"]
    window = TimeRange(T0, T0 + 10_000)

    history_ids = [r.value["id"] for r in await read_history(settings, topic, window)]
    reader = AlertReader(settings, topic)
    page, _ = await reader.history(T0, T0 + 10_000, 1000, lambda a: True)
    api_ids = [alert["id"] for _, alert in page]
    assert history_ids == api_ids == expected

    paged: list[str] = []
    after = None
    for _ in range(20):
        found, after = await reader.history(T0, T0 + 10_000, 2, lambda a: True, after)
        paged += [alert["id"] for _, alert in found]
        if after is None:
            break
    assert paged == expected
    assert reader.consumers == 0

    # The command itself, as a user runs it.
    listed = subprocess.run(
        [
            *(sys.executable, "-m", "streams.cli", "history", "alerts", "--json"),
            *("--since", "2026-12-01T00:00:00Z", "--until", "2026-12-02"),
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")},
            "STORYWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "STORYWATCH_TOPIC_ALERTS": topic,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == expected


# --- a topic followed into memory ---------------------------------------------------------


class _Memory:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []  # (topic, partition, offset) handed over
        self.values: dict[str, Any] = {}

    def apply(self, message: Message) -> None:
        self.seen.append((message.topic, message.partition, message.offset))
        key = json.loads(message.key) if message.key else None
        if message.value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = json.loads(message.value)


async def _until(check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the follower did not get there in time"
        await asyncio.sleep(0.1)


async def test_a_follower_catches_up_keeps_following_and_resumes_without_doubles(
    kafka_bootstrap: str,
) -> None:
    """Reads two topics from their start, says caught up once, hands over what is written
    later; a follower whose connection ends (cancelled here) resumes after the last record
    it handed over: every offset once."""
    first, second = _topic(kafka_bootstrap, partitions=2), _topic(kafka_bootstrap)
    _send(kafka_bootstrap, first, [(i % 2, T0 + i, f"a{i}", {"n": i}) for i in range(30)])
    _send(kafka_bootstrap, second, [(0, T0, "b", {"n": 0}), (0, T0 + 1, "b", None)])
    memory, told = _Memory(), []
    follower = TopicFollower(
        _kafka(kafka_bootstrap),
        [first, second],
        memory.apply,
        poll_ms=200,
        name="test",
        on_caught_up=lambda: told.append(len(memory.seen)),
    )
    task = asyncio.create_task(follower.follow())
    await asyncio.wait_for(follower.caught_up.wait(), 60)
    assert told == [32] and len(memory.values) == 30 and "b" not in memory.values
    _send(kafka_bootstrap, second, [(0, T0 + 2, "c", {"n": 1})])
    await _until(lambda: "c" in memory.values)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _send(kafka_bootstrap, first, [(1, T0 + 99, "d", {"n": 2})])
    task = asyncio.create_task(follower.follow())
    try:
        await _until(lambda: "d" in memory.values)
    finally:
        task.cancel()
    assert len(memory.seen) == len(set(memory.seen)) == 34
    assert told == [32] and follower.connections == 2

    once = _Memory()
    await read_to_end(_kafka(kafka_bootstrap), [first], once.apply)
    assert len(once.values) == 31


async def test_a_follower_from_the_end_hands_on_only_what_arrives(kafka_bootstrap: str) -> None:
    """The alerts fan-out's way: caught up at once at the end, then only new records."""
    topic = _topic(kafka_bootstrap)
    _send(kafka_bootstrap, topic, [(0, T0 + i, f"old{i}", {"n": i}) for i in range(5)])
    memory = _Memory()
    follower = TopicFollower(
        _kafka(kafka_bootstrap), [topic], memory.apply, poll_ms=200, name="t", from_end=True
    )
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.caught_up.wait(), 60)
        assert follower.positions == {TopicPartition(topic, 0): 5}
        _send(kafka_bootstrap, topic, [(0, T0 + 9, "new", {"n": 9})])
        await _until(lambda: "new" in memory.values)
    finally:
        task.cancel()
    assert list(memory.values) == ["new"]


async def test_a_follower_waits_for_a_missing_topic(kafka_bootstrap: str) -> None:
    """A topic not created yet: the follower retries (TopicNotFound, logged) and catches up
    once a worker has created it; a command's one-shot read names the topic instead."""
    name = f"layer-later-{uuid.uuid4().hex[:8]}"
    memory = _Memory()
    settings = _kafka(kafka_bootstrap)
    follower = TopicFollower(settings, [name], memory.apply, poll_ms=200, name="t", retry_s=0.5)
    task = asyncio.create_task(follower.run())
    try:
        with pytest.raises(TopicNotFound, match="storywatch worker"):
            await read_to_end(settings, [name], memory.apply)
        admin = KafkaConnection(kafka_bootstrap).admin()
        try:
            admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            admin.close()
        _send(kafka_bootstrap, name, [(0, T0, "x", {"n": 1})])
        await asyncio.wait_for(follower.caught_up.wait(), 60)
        await _until(lambda: "x" in memory.values)
    finally:
        task.cancel()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """A broker of this test's own, which it stops and starts again (same port, same data)."""
    from streams.kafka.local import free_port, start_broker, stop_broker

    settings = Settings()
    port = free_port()
    info = start_broker(settings.kafka_dir, settings.kafka_version, port=port, data_dir=tmp_path)
    try:
        yield info.bootstrap, tmp_path, port
    finally:
        stop_broker(tmp_path)


@pytest.mark.faults
async def test_a_follower_survives_a_broker_restart(own_broker: tuple[str, Path, int]) -> None:
    """The broker stops under a following reader and starts again: the follower keeps what
    memory holds meanwhile, reconnects, and hands over what was written after the restart,
    every offset once."""
    from streams.kafka.local import start_broker, stop_broker

    bootstrap, data_dir, port = own_broker
    topic = _topic(bootstrap)
    _send(bootstrap, topic, [(0, T0 + i, f"k{i}", {"n": i}) for i in range(10)])
    memory = _Memory()
    follower = TopicFollower(
        _kafka(bootstrap), [topic], memory.apply, poll_ms=200, name="t", retry_s=0.5
    )
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.caught_up.wait(), 60)
        await asyncio.to_thread(stop_broker, data_dir)
        await asyncio.sleep(2)
        assert len(memory.values) == 10  # still served while the broker is away
        settings = Settings()
        await asyncio.to_thread(
            start_broker, settings.kafka_dir, settings.kafka_version, port=port, data_dir=data_dir
        )
        _send(bootstrap, topic, [(0, T0 + 100, "after", {"n": 100})])
        await _until(lambda: "after" in memory.values, timeout_s=120)
    finally:
        task.cancel()
    assert len(memory.seen) == len(set(memory.seen)) == 11
