"""The worker's Faust app with durable producers and a consumer that never skips records.

Producers: every record is sent with ``acks=all`` and idempotence, so a broker that dies
mid-write neither loses an acked record (with ``min.insync.replicas`` >= 2 on a cluster) nor
makes a retried send appear twice.

Consumer: Faust (0.15.3) takes any jump in the offsets it reads for a gap left by log
compaction and counts the skipped offsets as processed, so the next commit passes them.
The pipeline's stream topics are not compacted and its producers write no transaction
markers, so a jump there means records were fetched and then dropped inside Faust (the kill
test caught 235 `articles` records skipped right after a restart's recovery, never
embedded; the takeover test 4 `articles-embedded` records skipped by the worker taking the
partition over, never clustered). Here a jump on a stream partition is answered by seeking
back to where Faust last read, once per position (a jump seen again from the same place is
real, e.g. records deleted by retention, and is let through as Faust would)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message, TransportT

__all__ = ["DurableApp", "rewind_to"]

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


class _GaplessConsumer(faust_aiokafka.Consumer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._rewound_from: dict[TP, int] = {}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        rewinding: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if tp in rewinding:
                continue  # the rest of this fetch for tp: it is read again after the seek
            read = self._read_offset[tp]
            target = None
            if self.app.topics.acks_enabled_for(tp.topic):
                target = rewind_to(read, message.offset, self._rewound_from.get(tp))
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


class _IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


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
