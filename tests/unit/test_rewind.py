"""The consumer's answer to a jump in a stream partition's offsets (streams/kafka/transport.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import FutureMessage, PendingMessage

from streams.kafka.transport import DurableApp, HeadStalls, commit_end, rewind_to


def test_consecutive_offsets_read_on() -> None:
    assert rewind_to(1669, 1670, None) is None


def test_the_first_record_after_a_seek_reads_on() -> None:
    # After a seek Faust's read offset is the offset to read next: the same offset arrives.
    assert rewind_to(1606, 1606, None) is None


def test_nothing_read_yet_reads_on() -> None:
    assert rewind_to(None, 500, None) is None


def test_skipped_records_are_read_again_from_the_read_offset() -> None:
    # What the kill test saw: 1670..1904 dropped inside Faust, 1905 arrived after 1669
    # (1669 is read twice: harmless, every stage is idempotent by id).
    assert rewind_to(1669, 1905, None) == 1669
    # What the takeover test saw: seeked to 267 (the offset to read next), 271 arrived.
    assert rewind_to(267, 271, None) == 267


def test_a_jump_seen_again_from_the_same_place_is_real_and_let_through() -> None:
    assert rewind_to(1669, 1905, 1669) is None
    assert rewind_to(1700, 1800, 1669) == 1700


# --- what a commit may cover --------------------------------------------------------------

TP_ = TP("articles", 0)


def test_a_commit_covers_the_unbroken_run_from_the_committed_offset() -> None:
    assert commit_end(10, {10, 11, 12, 14}) == 13


def test_an_unacked_first_record_holds_the_commit() -> None:
    # Faust 0.15.3 would commit 13 here, past offset 10 that was never processed.
    assert commit_end(10, {11, 12}) is None


def test_offsets_known_absent_count_as_done_without_listing_them() -> None:
    # Records deleted by retention: a span of a billion offsets is one pair, not a set.
    assert commit_end(10, {10, 1_000_000_011}, [(11, 1_000_000_011)]) == 1_000_000_012
    assert commit_end(10, {12}, [(10, 12)]) == 13
    assert commit_end(10, {12}, [(11, 12)]) is None  # 10 itself is neither


def test_nothing_committed_yet_starts_from_the_lowest_known() -> None:
    assert commit_end(None, {5, 6, 8}) == 7
    assert commit_end(None, {9}, [(3, 9)]) == 10
    assert commit_end(None, set()) is None


def test_a_stalled_first_record_is_read_again_then_counted_absent() -> None:
    stalls = HeadStalls(after_s=30.0)
    assert stalls.observe(TP_, 10, now=0.0) is None
    assert stalls.observe(TP_, 10, now=29.0) is None  # could still be slow
    assert stalls.observe(TP_, 10, now=30.0) == "reread"
    assert stalls.observe(TP_, 10, now=31.0) is None  # the clock starts again
    assert stalls.observe(TP_, 10, now=61.0) == "skip"  # read again: still missing


def test_progress_resets_the_stall_clock() -> None:
    stalls = HeadStalls(after_s=30.0)
    assert stalls.observe(TP_, 10, now=0.0) is None
    assert stalls.observe(TP_, None, now=20.0) is None  # acked, or in flight: no stall
    assert stalls.observe(TP_, 10, now=40.0) is None  # a new stall clock from 40
    assert stalls.observe(TP_, 20, now=69.0) is None  # moved on: a new stall clock
    assert stalls.observe(TP_, 20, now=99.0) == "reread"


# --- the worker's consumer, on Faust's own bookkeeping (no broker: acks and commits are in
# memory until a commit is sent) -------------------------------------------------------------


def _consumer_with_acks(committed: int, acked: list[int]) -> Any:
    """The worker app's consumer for a stream topic whose committed offset is ``committed``,
    after the stream acked the records at ``acked``."""
    app = DurableApp("commit-check", broker="kafka://127.0.0.1:9")
    consumer: Any = app.consumer
    app.topics.acking_topics.add(TP_.topic)  # what subscribing an agent's topic does
    consumer._committed_offset[TP_] = committed
    for offset in acked:
        consumer.ack(_message(offset))
    return consumer


def test_the_worker_consumer_never_commits_past_an_unacked_first_record() -> None:
    consumer = _consumer_with_acks(10, [11, 12])
    assert consumer._new_offset(TP_) is None
    consumer.ack(_message(10))
    assert consumer._new_offset(TP_) == 13


def _message(offset: int) -> Message:
    return Message(TP_.topic, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP_)


@pytest.mark.parametrize("in_flight", [False, True])
def test_a_first_record_never_acked_is_read_again_unless_in_flight(
    in_flight: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook delivery retrying for minutes is acked after later outbox entries: in
    flight, it is waited for; dropped, it is read again."""
    consumer = _consumer_with_acks(10, [11, 12])
    consumer._stalls = HeadStalls(after_s=0.0)  # no 30 s wait in a unit test
    held = _message(10)  # the stream holds it (Faust keeps unacked messages weakly)
    if in_flight:
        consumer._unacked_messages.add(held)
    assert consumer._new_offset(TP_) is None
    dropped = "was dropped before processing; reading again from 10" in caplog.text
    assert dropped is not in_flight


def test_faust_alone_commits_past_it() -> None:
    """Why the override exists: the same acks through Faust's own choice skip offset 10.
    (If this fails after a Faust upgrade, the off-by-one is fixed upstream.)"""
    consumer = _consumer_with_acks(10, [11, 12])
    assert faust_aiokafka.Consumer._new_offset(consumer, TP_) == 13


# --- stream records fetched during a rebalance ------------------------------------------------


def test_stream_records_are_held_back_from_a_rebalance_start_to_its_end() -> None:
    app = DurableApp("hold-check", broker="kafka://127.0.0.1:9")
    consumer: Any = app.consumer
    app.flow_control.resume()
    assert not consumer.holds_back()
    app.on_rebalance_start()  # partitions revoked: Faust has not suspended the flow yet
    assert consumer.holds_back()
    app.flow_control.suspend()
    assert consumer.holds_back()
    app.flow_control.resume()  # recovery reads the changelogs; the rebalance goes on
    assert consumer.holds_back()
    app.on_rebalance_end()  # after recovery's last resume
    assert not consumer.holds_back()


def test_faust_alone_empties_the_stream_queues_at_every_resume() -> None:
    """Why records are held until the rebalance ends, not only while the flow is suspended:
    Faust's recovery resumes flow control a second time after the stream partitions were
    resumed, and that resume empties what the streams had queued meanwhile. (If this fails
    after a Faust upgrade, look again at whether the hold is still needed.)"""
    app = DurableApp("clear-check", broker="kafka://127.0.0.1:9")
    app.flow_control.resume()
    queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)  # as a topic's channel
    queue.put_nowait("a fetched record")
    app.flow_control.resume()
    assert queue.empty()


# --- the producer's flush (every table write is queued in Faust's buffer first) -----------


class _SlowClient:
    """Stands in for the Kafka client taking a record: slow, as on a loaded machine."""

    def __init__(self) -> None:
        self.handed: list[str] = []

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        await asyncio.sleep(0.15)
        self.handed.append(fut.message.key)


async def _queued(producer: Any, client: _SlowClient, n: int) -> None:
    await producer.buffer.start()
    for i in range(n):
        message = PendingMessage(client, f"k{i}", b"v", 0, None, None, None, None, None)
        producer.buffer.put(FutureMessage(message))


async def test_a_flush_returns_once_every_queued_record_was_handed_to_the_client() -> None:
    producer: Any = DurableApp("flush-check", broker="kafka://127.0.0.1:9").producer
    client = _SlowClient()
    await _queued(producer, client, 3)
    try:
        await producer.flush()
        assert client.handed == ["k0", "k1", "k2"]
    finally:
        await producer.buffer.stop()


async def test_faust_alone_flushes_without_waiting_for_its_buffer() -> None:
    """Why the override exists: Faust's flush returned with the records still queued (and
    Faust commits offsets right after it)."""
    producer: Any = DurableApp("flush-check-faust", broker="kafka://127.0.0.1:9").producer
    client = _SlowClient()
    await _queued(producer, client, 3)
    try:
        await faust_aiokafka.Producer.flush(producer)
        assert len(client.handed) < 3
    finally:
        await producer.flush()  # the buffer refuses to stop with records queued
        await producer.buffer.stop()
