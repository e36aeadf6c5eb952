"""The live run's outputs by time: story events on ``stories`` and alerts on ``alerts``,
read by Kafka record time (the time of the article that caused them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.groups import KafkaSettings
from streams.kafka.readers import decode_json_object
from streams.kafka.window import Plan, ServedIds, TopicReader
from streams.time_ranges import TimeRange

__all__ = ["HistoryRecord", "read_history"]


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    timestamp: int  # Kafka record time, epoch ms
    offset: int
    value: dict[str, Any]


async def read_history(
    kafka: KafkaSettings,
    topic: str,
    window: TimeRange,
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
    on_plan: Callable[[Plan], None] | None = None,
) -> list[HistoryRecord]:
    """Every JSON record of ``topic`` in ``window`` that ``keep`` accepts, in read order;
    a re-sent copy (the same ``id``: an alert's CloudEvent id) once, as ``GET /api/alerts``
    serves it (streams/kafka/window.py)."""
    async with TopicReader(kafka) as reader:
        plan = await reader.plan(topic, window)
        if on_plan is not None:
            on_plan(plan)
        served = ServedIds()
        found = []
        async for record in reader.records(plan):
            value = decode_json_object(record.value)
            if value is not None and keep(value) and served.first(value):
                found.append(HistoryRecord(record.timestamp, record.offset, value))
        return found
