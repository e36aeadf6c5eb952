"""Consumer lag per topic/partition, as a gauge: how many records wait to be processed.

Faust's Prometheus sensor exports the end offset only when records arrive and the committed
offset only on commits, so a stalled consumer shows a frozen difference. Here the worker asks
the broker for each assigned partition's end offset (the high watermark) on a timer and
subtracts the group's committed offset (the next record it will process).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from prometheus_client import Gauge

__all__ = ["LAG_REFRESH_S", "ConsumerLag"]

logger = logging.getLogger(__name__)

# Why 5 s: one end-offsets request per refresh is cheap for the broker, and Prometheus scrapes
# every 15 s in docker/prometheus/prometheus.yml, so each scrape sees a fresh value.
LAG_REFRESH_S = 5.0


class ConsumerLag:
    """Sets ``gauge{topic, partition}`` for the partitions this worker's agents consume
    (not the tables' changelogs, which the worker reads only to recover)."""

    def __init__(self, app: faust.App, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge
        self._labels: set[tuple[str, str]] = set()

    async def run(self) -> None:
        """Refresh every LAG_REFRESH_S for as long as the worker runs (an app task)."""
        while True:
            await self.refresh()
            await asyncio.sleep(LAG_REFRESH_S)

    async def refresh(self) -> None:
        app: Any = self.app
        recovered = app.tables.recovery.completed.is_set()
        if not recovered or app.rebalancing or app.in_recovery or app.should_stop:
            return  # no assignment yet, or one that is changing: the next tick sees it
        consumer = app.consumer
        changelogs = app.tables.changelog_topics
        try:
            partitions = [
                tp
                for tp in consumer.assignment()
                if tp.topic not in changelogs and "__assignor" not in tp.topic
            ]
            ends = await consumer.highwaters(*partitions) if partitions else {}
            # Faust's private state, listed in streams/kafka/overrides.py
            committed = dict(getattr(consumer, "_committed_offset", {}))
            never = [tp for tp in partitions if committed.get(tp) is None]
            starts = await consumer.earliest_offsets(*never) if never else {}
        except (KafkaError, ConsumerNotStarted, OSError, TimeoutError) as exc:
            # an exception would end the timer for good: log, and try again next tick
            logger.warning("consumer lag not refreshed (%s): the broker did not answer", exc)
            return
        seen = set()
        for tp in partitions:
            end = ends.get(tp)
            if end is None:
                continue
            done = committed.get(tp)
            if done is None:
                done = starts.get(tp, 0)
            labels = (tp.topic, str(tp.partition))
            self.gauge.labels(*labels).set(max(0, end - done))
            seen.add(labels)
        for labels in self._labels - seen:  # revoked: another worker reports them now
            self.gauge.remove(*labels)
        self._labels = seen
