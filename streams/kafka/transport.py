"""The worker's Faust app with durable producers and a consumer that never skips records.

Producers: every record is sent with ``acks=all`` and idempotence, so a broker that dies
mid-write neither loses an acked record (with ``min.insync.replicas`` >= 2 on a cluster) nor
makes a retried send appear twice. A flush waits for Faust's own buffer of table writes too
(Faust's returned with them queued, and it commits offsets right after a flush).

Consumer: Faust (0.15.3) takes any jump in the offsets it reads for a gap left by log
compaction and counts the skipped offsets as processed, so the next commit passes them.
The pipeline's stream topics are not compacted and its producers write no transaction
markers, so a jump there means records were fetched and then dropped inside Faust (the kill
test caught 235 `articles` records skipped right after a restart's recovery, never
embedded; the takeover test 4 `articles-embedded` records skipped by the worker taking the
partition over, never clustered). Here a jump on a stream partition is answered by seeking
back to where Faust last read, once per position (a jump seen again from the same place is
real, e.g. records deleted by retention, and is let through as Faust would).

Commits: Faust commits past ONE record that was never acked when it is the first after the
committed offset (its check ``min(acked) - committed > 1`` is off by one: the committed offset
is the next to read). A record dropped without a jump (Faust cancels the delivery of a record
when its flow is suspended for a rebalance, yet counts it as read) was lost that way. Here a
commit only covers an unbroken run of offsets acked or known absent from the committed one
(:func:`commit_end`); a partition whose first uncommitted record stays unacked while later
ones are acked is read again from it (:class:`HeadStalls`), so such a record is processed,
late, instead of lost.

Rebalances: stream records fetched from the start of a rebalance to the end of Faust's
recovery are not handed to Faust at all (its streams and its recovery drop what arrives
then); the consumer seeks back to them and fetches them again once the rebalance is over
(:meth:`_GaplessConsumer.holds_back`), so the input order is kept.

Every private method and attribute of Faust these classes override or read is listed, with
its reason, in streams/kafka/overrides.py; tests/unit/test_library_overrides.py fails when
the pinned Faust changes under one of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP, Message, TransportT
from faust.types.tuples import FutureMessage

__all__ = ["DurableApp", "HeadStalls", "commit_end", "rewind_to"]

logger = logging.getLogger(__name__)


def rewind_to(read_offset: int | None, offset: int, rewound_from: int | None) -> int | None:
    """Where to seek when ``offset`` arrives after ``read_offset`` (Faust's last read offset,
    or after a seek the offset to read next: it does not say which): ``read_offset`` itself
    when records were skipped, so the first missing one is read again whichever it meant (one
    record read twice is harmless: every stage is idempotent by id), else None. No rewind
    twice from the same ``read_offset`` (``rewound_from``): that jump is real."""
    if read_offset is None or offset - read_offset <= 1 or rewound_from == read_offset:
        return None
    return read_offset


def commit_end(
    committed: int | None, acked: Collection[int], absent: Iterable[tuple[int, int]] = ()
) -> int | None:
    """The offset to commit (the next to read) for a partition whose ``committed`` offset
    (the next to read; None: nothing committed yet, so from the lowest known) is followed by
    the ``acked`` offsets and the ``absent`` spans (``[begin, end)``, known not in the log):
    the end of the unbroken run from ``committed``; None when there is nothing new to commit
    (``committed`` itself is neither acked nor absent)."""
    spans = sorted(absent)
    if committed is None:
        firsts = [*([min(acked)] if acked else []), *(begin for begin, _ in spans)]
        if not firsts:
            return None
        committed = min(firsts)
    end = committed
    while True:
        if end in acked:
            end += 1
            continue
        past = next((stop for begin, stop in spans if begin <= end < stop), None)
        if past is None:
            break
        end = past
    return end if end > committed else None


# Why 30 s: a batch is acked in order within seconds (the embed stage's largest batch takes
# ~2 s on this CPU; a broker outage holds the later records too, so they are not acked
# either); a first record unacked for 30 s while later ones are was dropped, not slow.
HEAD_STALL_S = 30.0

StallAction = Literal["reread", "skip"]
# Why 0.1 s: how often a flush looks again at a buffer that did not move (Faust's own wait).
_DRAIN_POLL_S = 0.1
# Why 0.05 s: a rebalance ends within a fraction of a second of resuming the stream
# partitions; fetching the held records again sooner only spins.
_HOLD_POLL_S = 0.05


@dataclass
class HeadStalls:
    """Partitions whose first uncommitted record is not acked, nor being processed, while
    later ones are acked.

    :meth:`observe` answers ``"reread"`` once a stall at one offset has lasted ``after_s``
    (seek back to it: the record and those after it are processed again, harmlessly), and
    ``"skip"`` if the same offset stalls again for as long after being read again (it is
    not in the log: count it as absent, as Faust would have)."""

    after_s: float = HEAD_STALL_S
    _since: dict[TP, tuple[int, float]] = field(default_factory=dict)
    _reread: dict[TP, int] = field(default_factory=dict)

    def observe(self, tp: TP, stalled_at: int | None, now: float) -> StallAction | None:
        """``stalled_at``: the offset of ``tp``'s first uncommitted record when it is not
        acked, nor in flight (a webhook delivery retrying for minutes acks after later
        entries), while later ones are acked; None when the partition is not stalled."""
        if stalled_at is None:
            self._since.pop(tp, None)
            return None
        offset, since = self._since.get(tp, (stalled_at, now))
        if offset != stalled_at:
            since = now
        self._since[tp] = (stalled_at, since)
        if now - since < self.after_s:
            return None
        self._since.pop(tp, None)
        if self._reread.get(tp) == stalled_at:
            del self._reread[tp]
            return "skip"
        self._reread[tp] = stalled_at
        return "reread"


class _GaplessConsumer(faust_aiokafka.Consumer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._rewound_from: dict[TP, int] = {}
        self._stalls = HeadStalls()
        self._reread_at: dict[TP, int] = {}

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's choice of the offset to commit, without its off-by-one (module doc)."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return super()._new_offset(tp)
        acked = self._acked[tp]
        if not acked:
            return None
        done = set(acked)
        absent = [(span.begin, span.end) for span in self._gap[tp]]
        committed = self._committed_offset[tp]
        end = commit_end(committed, done, absent)
        stalled_at = None
        if end is None and committed is not None:  # later records acked, the first not
            in_flight = any(m.tp == tp and m.offset == committed for m in self._unacked_messages)
            stalled_at = None if in_flight else committed
        action = self._stalls.observe(tp, stalled_at, time.monotonic())
        if action is not None and stalled_at is not None:
            self._on_stall(tp, stalled_at, action, min(done))
            if action == "skip":
                end = commit_end(stalled_at, done | {stalled_at}, absent)
        if end is None:
            return None
        acked[:] = sorted(o for o in acked if o >= end)
        self._acked_index[tp].intersection_update(acked)
        self._gap[tp].chop(0, end)
        return end

    def _on_stall(self, tp: TP, committed: int, action: StallAction, later: int) -> None:
        if action == "reread":
            logger.error(
                "%s[%d]: record %d was never processed while %d and later were: it was "
                "dropped before processing; reading again from %d",
                tp.topic,
                tp.partition,
                committed,
                later,
                committed,
            )
            self._reread_at[tp] = committed
        else:
            logger.error(
                "%s[%d]: record %d is still missing after reading again from it: counted "
                "as absent from the log and committed past",
                tp.topic,
                tp.partition,
                committed,
            )

    def holds_back(self) -> bool:
        """Whether stream records fetched now are kept for later (sought back to, fetched
        again): from the start of a rebalance until Faust's recovery has ended it.

        Two ways Faust (0.15.3) drops such records after counting them as read, so no jump
        shows and they are processed only when read again, after later ones:
        - its streams skip, unacked, what arrives while flow control is suspended (the kill
          test saw 138 `articles` records skipped that way after a restart);
        - its recovery resumes the stream partitions with flow control already active (it
          was resumed to read the changelogs), seeks them to the committed offsets, then
          resumes flow control again, and every resume empties the streams' queues: what
          was fetched in between is gone (a CI kill run lost 204 queued `articles` records
          there and forwarded the ones after them first).
        ``rebalancing`` is set when partitions are revoked and cleared after that last
        resume, so nothing reaches a stream queue in between."""
        return bool(self.app.rebalancing) or not self.app.flow_control.is_active()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        for tp, offset in list(self._reread_at.items()):
            del self._reread_at[tp]
            if tp in self.assignment():
                await self.seek(tp, offset)
        rewinding: set[TP] = set()
        held = False
        async for tp, message in super().getmany(timeout):
            if tp in rewinding:
                continue  # the rest of this fetch for tp: it is read again after the seek
            acking = self.app.topics.acks_enabled_for(tp.topic)
            if acking and self.holds_back():
                rewinding.add(tp)
                held = True
                await self.seek(tp, message.offset)
                continue
            read = self._read_offset[tp]
            target = None
            if acking:
                target = rewind_to(read, message.offset, self._rewound_from.get(tp))
                if (
                    target is None
                    and read is not None
                    and message.offset - read > 1
                    and self._rewound_from.get(tp) == read
                ):
                    # A real jump, seen again right after seeking to ``read``: ``read`` is
                    # absent too (Faust's own gap starts after it).
                    self._gap[tp].addi(read, message.offset)
            if target is not None and read is not None:
                logger.error(
                    "%s[%d]: offset %d arrived after %d: records were dropped before "
                    "processing; reading again from %d",
                    tp.topic,
                    tp.partition,
                    message.offset,
                    read,
                    target,
                )
                self._rewound_from[tp] = read
                rewinding.add(tp)
                await self.seek(tp, target)
                continue
            yield tp, message
        if held:
            await asyncio.sleep(_HOLD_POLL_S)  # not a busy loop while a rebalance ends


class _DrainableBuffer(ProducerBuffer):
    """Faust's buffer of ``send_soon`` records (every table write goes through it), counting
    the record its sender is handing to the client (out of the queue, not yet with it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.handing_over = 0

    async def _send_pending(self, fut: FutureMessage) -> None:
        self.handing_over += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.handing_over -= 1


class _IdempotentProducer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer = _DrainableBuffer(loop=self.loop, beacon=self.beacon)
        buffer.app = self.app
        self.buffer = buffer

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    async def flush(self) -> None:
        """Every record sent so far is on the broker when this returns.

        Faust's own flush (0.15.3) gives up when no buffered record left the buffer within
        0.1 s (``ProducerBuffer.flush_atmost``), and Faust commits offsets right after it: on
        a loaded machine a batch's table writes were still queued when its input offsets were
        committed, and a worker killed then lost them (the takeover test found the story one
        article started missing from the tables, yet the article was not read again). Here
        the buffer is drained, the record in hand included, before the client's flush."""
        buffer = self.buffer
        if isinstance(buffer, _DrainableBuffer):
            while (buffer.size or buffer.handing_over) and not buffer.should_stop:
                buffer.message_sent.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(buffer.message_sent.wait(), timeout=_DRAIN_POLL_S)
        await super().flush()


class _DurableTransport(faust_aiokafka.Transport):
    Consumer = _GaplessConsumer
    Producer = _IdempotentProducer


class DurableApp(faust.App):
    """``faust.App`` whose producer (tables' changelogs, every topic send) is idempotent.

    Faust turns idempotence on only inside transactions (exactly-once mode, which this
    pipeline does not use: its effects are idempotent by key instead)."""

    def _new_transport(self) -> TransportT:
        return _DurableTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return _DurableTransport(self.conf.broker_producer, self)
