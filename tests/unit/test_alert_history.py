"""The alert readers serve a CloudEvent id once: what they remember, and for how long; and
history pages with cursors: paging through a window serves what one large request does."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndTimestamp

from config.settings import Settings
from streams.alert_history import (
    _RESUME_LOOKBACK as LOOKBACK,
)
from streams.alert_history import (
    AlertFanout,
    AlertPage,
    AlertReader,
    OwnedAlert,
    ServedIds,
    decode_alert_cursor,
    encode_alert_cursor,
)
from streams.cursors import BadCursor, encode_cursor
from streams.web.alert_views import cursor_offset
from streams.web.http import HttpError


def _alert(alert_id: Any) -> dict[str, Any]:
    return {"id": alert_id, "data": {"owner": "alice"}}


def test_a_copy_of_an_alert_already_served_is_dropped() -> None:
    served = ServedIds(100)
    stream = ["s:st-1:new_story", "s:st-2:new_story", "s:st-1:new_story", "s:st-1:growth:10"]
    kept = [alert_id for alert_id in stream if served.first(_alert(alert_id))]
    assert kept == ["s:st-1:new_story", "s:st-2:new_story", "s:st-1:growth:10"]


def test_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    served = ServedIds(3)
    for alert_id in ("a", "b", "c", "d"):
        assert served.first(_alert(alert_id))
    assert len(served) == 3
    assert not served.first(_alert("d"))  # still remembered
    assert served.first(_alert("a"))  # forgotten: the oldest went first


def test_an_alert_without_an_id_is_never_taken_for_a_copy() -> None:
    served = ServedIds(10)
    assert served.first({"data": {}}) and served.first({"data": {}})
    assert served.first(_alert(None)) and served.first(_alert(7))
    assert len(served) == 0


# --- history pages and their cursors ----------------------------------------------------


def _record(offset: int, timestamp: int, value: dict[str, Any] | None) -> ConsumerRecord:
    raw = b"not json" if value is None else json.dumps(value).encode()
    return ConsumerRecord("alerts", 0, offset, timestamp, 0, None, raw, None, 0, len(raw), ())


def _topic(seed: int, n: int = 60) -> list[ConsumerRecord]:
    """Two owners' alerts (some not JSON), a few re-sent a few records later, as the topic
    holds them: offsets 0..n-1, times ascending with ties."""
    rng = random.Random(seed)
    values: list[dict[str, Any] | None] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.1:
            values.append(None)
        elif roll < 0.3 and values:
            values.append(rng.choice([v for v in values[-6:] if v is not None] or [None]))
        else:
            owner = rng.choice(["alice", "bob"])
            values.append({"id": f"s:st-{i}:new_story", "data": {"owner": owner}})
    times = sorted(rng.randrange(1_000, 1_000 + n // 2) for _ in range(n))
    return [_record(i, t, v) for i, (t, v) in enumerate(zip(times, values, strict=True))]


def _alice(alert: dict[str, Any]) -> bool:
    return bool(alert["data"]["owner"] == "alice")


class _Partition:
    """The alerts partition in memory, with the calls AlertReader makes of its consumer."""

    def __init__(self, records: list[ConsumerRecord]) -> None:
        self.records = records
        self.at = 0

    def assign(self, _partitions: list[TopicPartition]) -> None:
        pass

    def partitions_for_topic(self, _topic: str) -> set[int]:
        return {0}

    def seek(self, _partition: TopicPartition, offset: int) -> None:
        self.at = offset

    async def getmany(
        self, partition: TopicPartition, timeout_ms: int, max_records: int | None = None
    ) -> dict[Any, Any]:
        batch = self.records[self.at : self.at + 7]  # a few per fetch
        self.at += len(batch)
        return {partition: batch}

    async def position(self, _partition: TopicPartition) -> int:
        return self.at

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return dict.fromkeys(partitions, len(self.records))

    async def offsets_for_times(self, times: dict[Any, int]) -> dict[Any, Any]:
        return {
            partition: next(
                (
                    OffsetAndTimestamp(r.offset, r.timestamp)
                    for r in self.records
                    if r.timestamp >= at
                ),
                None,
            )
            for partition, at in times.items()
        }


def _reader(topic: list[ConsumerRecord]) -> AlertReader:
    """A real AlertReader whose consumer reads ``topic`` (offset = index) from memory."""
    reader = AlertReader(Settings().kafka, Settings().topic_alerts)

    @asynccontextmanager
    async def consumer() -> AsyncIterator[_Partition]:
        yield _Partition(topic)

    reader._consumer = consumer  # type: ignore[method-assign,assignment]
    return reader


async def _pages(
    topic: list[ConsumerRecord], since_ms: int | None, until_ms: int | None, limit: int
) -> list[list[OwnedAlert]]:
    """Every page of Alice's history in the window, following next_cursor to its end."""
    reader, pages, cursor = _reader(topic), [], None
    for _ in range(len(topic) + 2):
        after = None if cursor is None else decode_alert_cursor(cursor)
        found, resume = await reader.history(since_ms, until_ms, limit, _alice, after)
        assert len(found) <= limit
        pages.append(found)
        cursor = None if resume is None else encode_alert_cursor(resume)
        if cursor is None:
            return pages
    raise AssertionError("the cursor never ended")


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_paging_with_cursors_serves_what_one_large_request_does(
    seed: int, limit: int
) -> None:
    topic = _topic(seed)
    since_ms = None if seed % 4 == 0 else topic[seed % 5].timestamp
    until_ms = None if seed % 3 == 0 else topic[-(seed % 7) - 1].timestamp
    (whole,) = await _pages(topic, since_ms, until_ms, 1000)
    assert whole, "the sample topic should hold some of Alice's alerts"
    pages = await _pages(topic, since_ms, until_ms, limit)
    assert [alert for page in pages for alert in page] == whole
    # Full pages, and no empty one at the end: next_cursor is null once nothing follows.
    assert all(len(page) == limit for page in pages[:-1]) and pages[-1]
    ids = [alert["id"] for _, alert in whole]
    assert len(ids) == len(set(ids)) < len([r for r in topic if r.value != b"not json"])


def _alert_of(owner: str, alert_id: str) -> dict[str, Any]:
    return {"id": alert_id, "data": {"owner": owner}}


async def test_a_full_page_answers_a_cursor_only_while_another_alert_follows() -> None:
    alice, bob = _alert_of("alice", "a"), _alert_of("bob", "b")
    topic = [_record(0, 1, alice), _record(1, 1, bob), _record(2, 1, bob)]
    assert await _reader(topic).history(None, None, 1, _alice) == ([(0, alice)], None)
    topic.append(_record(3, 2, _alert_of("alice", "c")))
    assert (await _reader(topic).history(None, None, 1, _alice))[1] == 1  # after the last one
    assert (await _reader(topic).history(None, 2, 1, _alice))[1] is None  # c is past until


async def test_a_copy_is_served_again_only_past_the_lookback() -> None:
    """A copy of an alert from an earlier page is dropped while the original is within
    LOOKBACK records before the page; one further back is served again."""
    filler = [_alert_of("bob", f"b{i}") for i in range(LOOKBACK + 200)]
    for gap in (LOOKBACK // 2, LOOKBACK + 100):
        values = [
            _alert_of("alice", "a"),
            *filler[:gap],
            _alert_of("alice", "c"),
            _alert_of("alice", "d"),
            _alert_of("alice", "a"),
        ]
        topic = [_record(i, 1, v) for i, v in enumerate(values)]
        pages = await _pages(topic, None, None, 2)
        served = [alert["id"] for page in pages for _, alert in page]
        assert served == (["a", "c", "d"] if gap < LOOKBACK else ["a", "c", "d", "a"]), gap
        (whole,) = await _pages(topic, None, None, 1000)
        assert [alert["id"] for _, alert in whole] == ["a", "c", "d"]


def test_a_page_cut_short_answers_where_it_stopped_reading() -> None:
    bob = {"id": "b", "data": {"owner": "bob"}}
    page = AlertPage(None, 5, _alice, ServedIds(5), 10)
    for offset in range(10, 14):  # the scan limit or the deadline ends the read here
        assert page.take(_record(offset, 1, bob))
    assert page.alerts == [] and page.next_offset(end=20) == 14
    assert page.next_offset(end=14) is None  # read to the end: nothing left


def test_alert_cursors_round_trip_and_bad_ones_are_refused() -> None:
    for offset in (0, 1, 123_456_789_012):
        assert decode_alert_cursor(encode_alert_cursor(offset)) == offset
    bad = [
        "garbage!",
        "",
        encode_cursor("size", (3,)),  # another list's cursor
        encode_cursor("alerts", (-1,)),
        encode_cursor("alerts", (1.5,)),
        encode_cursor("alerts", ("7",)),
        encode_cursor("alerts", (1, 2)),
        encode_cursor("alerts", (True,)),
    ]
    for cursor in bad:
        with pytest.raises(BadCursor):
            decode_alert_cursor(cursor)
        if cursor:
            with pytest.raises(HttpError) as refused:
                cursor_offset(cursor)
            assert refused.value.status == 400 and refused.value.field == "cursor"
    assert cursor_offset(None) is None and cursor_offset("") is None
    assert cursor_offset(encode_alert_cursor(42)) == 42


# --- the live streams' shared reader ------------------------------------------------------


def _counting_reader(topic: list[ConsumerRecord]) -> AlertReader:
    """A real AlertReader over ``topic`` in memory (which the test appends to), counting its
    open consumers as the worker's metric does."""
    reader = AlertReader(Settings().kafka, Settings().topic_alerts)

    class Growing(_Partition):
        async def getmany(
            self, partition: TopicPartition, timeout_ms: int, max_records: int | None = None
        ) -> dict[Any, Any]:
            batch = await super().getmany(partition, timeout_ms)
            if not batch[partition]:
                await asyncio.sleep(0.01)  # a poll with nothing new waits, as Kafka's does
            return batch

    @asynccontextmanager
    async def consumer() -> AsyncIterator[_Partition]:
        reader._count(1)
        try:
            yield Growing(topic)
        finally:
            reader._count(-1)

    reader._consumer = consumer  # type: ignore[method-assign,assignment]
    return reader


async def _collect(
    fanout: AlertFanout, after: int | None, into: list[OwnedAlert], stop: asyncio.Event
) -> None:
    async for found in fanout.follow(after, _alice, lambda: not stop.is_set()):
        into.append(found)


async def test_one_shared_reader_serves_every_stream_its_owners_alerts_once() -> None:
    """New streams get only alerts after they joined; a stream resuming after offset 5 reads
    its gap with a consumer of its own that closes, then joins the shared reader; every
    stream gets Alice's alerts once (a re-sent copy skipped), never Bob's; while they run,
    one consumer reads the topic for all of them."""
    topic = _topic(3, n=30)
    reader = _counting_reader(topic)
    fanout = AlertFanout(reader)
    runner = asyncio.create_task(fanout.run())
    stop = asyncio.Event()
    fresh: list[list[OwnedAlert]] = [[] for _ in range(5)]
    tasks = [asyncio.create_task(_collect(fanout, None, got, stop)) for got in fresh]
    resumed: list[OwnedAlert] = []
    await asyncio.sleep(0.1)
    tasks.append(asyncio.create_task(_collect(fanout, 5, resumed, stop)))
    await asyncio.sleep(0.2)
    assert fanout.streams == 6
    assert reader.consumers == 1  # the gap read has closed; one reader for six streams
    for i, record in enumerate(_topic(4, n=30)):  # 30 more, with ids of their own
        value = None if record.value == b"not json" else json.loads(record.value)
        if value is not None:
            value["id"] = "late-" + value["id"]
        topic.append(_record(30 + i, record.timestamp, value))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    runner.cancel()

    def expected(records: list[ConsumerRecord]) -> list[int]:
        """Alice's alerts in ``records``, a copy of an id seen before skipped."""
        seen: set[str] = set()
        offsets = []
        for record in records:
            if record.value == b"not json":
                continue
            alert = json.loads(record.value)
            if alert["data"]["owner"] == "alice" and alert["id"] not in seen:
                seen.add(alert["id"])
                offsets.append(record.offset)
        return offsets

    for got in fresh:
        assert [offset for offset, _ in got] == expected(topic[30:])
    # The resumed stream: everything after offset 5 that its client had not seen (the ids
    # at offsets 0-5 it had are remembered from the look-back), gap then live, in order.
    assert [offset for offset, _ in resumed] == [o for o in expected(topic) if o > 5]
    assert fanout.streams == 0
