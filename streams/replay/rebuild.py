"""``storywatch rebuild``: re-derive the cluster stage's story state from history.

1. While the workers run (their state serves as before), replay ``articles-embedded`` from
   ``--from`` to its current end through the engine, in memory: the new state.
2. Switch, once the app's consumer group has no members (the workers are stopped: Faust
   tables have no safe way to swap state under a running worker): read the records that
   arrived meanwhile, then write the new state into the three story tables' changelogs
   (tombstones for every key not in it), empty the cluster journal, and move the group's
   committed offset on ``articles-embedded`` to the end the new state covers. Started again,
   the workers load it (tables are rebuilt from their changelogs on every start).

The old state is untouched until step 2 starts; step 2 takes seconds. Interrupted during
step 2, run the same command again before starting the workers (it recomputes and rewrites
everything, and moves the offset last).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from config.settings import Settings
from streams.exceptions import ReplayError
from streams.kafka.connection import KafkaConnection
from streams.kafka.window import Plan, Span, TopicReader
from streams.replay.backtest import Backtest
from streams.replay.progress import Progress
from streams.replay.sources import embedded_items
from streams.time_ranges import TimeRange, format_ms

__all__ = ["RebuildResult", "changelog_topics", "rebuild_state"]

Say = Callable[[str], None]
# Why 2 s: how often the switch checks whether the workers have left the group.
_GROUP_POLL_S = 2.0
# The engine's tables (see streams/tables.py) by the name StateChanges.records() uses.
_TABLES = {"stories": "story-state", "groups": "story-groups", "seen": "story-seen"}
_JOURNAL = "cluster-journal"


def changelog_topics(settings: Settings) -> dict[str, str]:
    """Faust's changelog topic of each table: ``<app id>-<table>-changelog``."""
    names = {**_TABLES, "journal": _JOURNAL}
    return {key: f"{settings.app_id}-{table}-changelog" for key, table in names.items()}


@dataclass(frozen=True)
class RebuildResult:
    articles: int
    stories: int
    written: int
    deleted: int
    offset: int  # the committed offset on articles-embedded after the switch


def _members(admin: Any, group: str) -> int:
    described = admin.describe_groups([group]).get(group) or {}
    return len(described.get("members") or [])


def _keys(settings: Settings, topic: str) -> set[bytes]:
    """Every key a changelog holds now (its latest value not a tombstone)."""
    consumer = KafkaConnection.from_settings(settings.kafka).consumer(
        group_id=None, enable_auto_commit=False
    )
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        live: dict[bytes, bool] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    if r.key is not None:
                        live[r.key] = r.value is not None
        return {k for k, alive in live.items() if alive}
    finally:
        consumer.close()


def _encode(value: Any) -> bytes:
    """As Faust writes table keys and values: compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


async def _replay(
    settings: Settings, test: Backtest, plan: Plan, tty: bool | None, say: Say
) -> None:
    async with TopicReader(settings.kafka) as reader:
        progress = Progress(plan.total, "rebuild", tty=tty, echo=say)
        async for item in embedded_items(reader.records(plan), settings.model):
            test.observe(item)
            progress.update()
        progress.close()


async def _plan(settings: Settings, window: TimeRange) -> Plan:
    async with TopicReader(settings.kafka) as reader:
        return await reader.plan(settings.topic_embedded, window)


def rebuild_state(
    settings: Settings, start_ms: int, say: Say, *, wait_s: float, tty: bool | None = None
) -> RebuildResult:
    """Build the new state from ``start_ms``, wait for the workers to stop, switch."""
    window = TimeRange(start_ms, None)
    plan = asyncio.run(_plan(settings, window))
    if plan.total == 0:
        raise ReplayError(
            f"no articles on {plan.topic} since {format_ms(start_ms)}; {plan.kept()}: "
            "nothing to rebuild from, nothing changed"
        )
    if plan.clipped:
        assert plan.earliest_ms is not None
        say(
            f"--from is older than the oldest record kept on {plan.topic}: rebuilding from "
            f"{format_ms(plan.earliest_ms)}"
        )
    if len(plan.spans) != 1:
        raise ReplayError(f"{plan.topic} must have one partition (clustering reads one stream)")
    test = Backtest(settings, [], None, keep_state=True)
    say(f"building the new state from {plan.total} records (the old state serves meanwhile)")
    asyncio.run(_replay(settings, test, plan, tty, say))

    admin = KafkaConnection.from_settings(settings.kafka).admin(client_id="storywatch-rebuild")
    try:
        group = settings.app_id
        deadline = time.monotonic() + wait_s
        if _members(admin, group):
            say(
                f"the new state is ready; stop the workers of {group} (STORYWATCH_APP_ID) to "
                f"switch to it: waiting up to {wait_s:.0f} s"
            )
        while _members(admin, group):
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"the workers of {group} are still running after {wait_s:.0f} s: nothing "
                    "changed, the old state is intact; stop them and run rebuild again "
                    "(or pass a longer --wait)"
                )
            time.sleep(_GROUP_POLL_S)
        # The records that arrived while the new state was built: the tail, by offset.
        span = plan.spans[0]
        tail_plan = asyncio.run(_plan(settings, TimeRange(None, None)))
        end = tail_plan.spans[0].end if tail_plan.spans else span.end
        if end > span.end:
            tail = Plan(plan.topic, TimeRange(None, None), (Span(0, span.end, end),), None, None)
            say(f"catching up {end - span.end} records that arrived meanwhile")
            asyncio.run(_replay(settings, test, tail, tty, say))
        return _switch(settings, admin, test, end)
    finally:
        admin.close()


def _switch(settings: Settings, admin: Any, test: Backtest, end: int) -> RebuildResult:
    topics = changelog_topics(settings)
    records = test.state.records()
    producer = KafkaConnection.from_settings(settings.kafka).producer(
        acks="all",
        linger_ms=5,
        max_request_size=settings.dlq_max_message_bytes,
    )
    written = deleted = 0
    try:
        for name in _TABLES:
            topic = topics[name]
            new = {_encode(k): v for k, v in records[name].items() if v is not None}
            for key in _keys(settings, topic) - set(new):
                producer.send(topic, key=key, value=None)
                deleted += 1
            for key, value in new.items():
                producer.send(topic, key=key, value=_encode(value))
                written += 1
        # The journal completes a torn batch on restore: the old one must not be re-applied.
        for key in _keys(settings, topics["journal"]):
            producer.send(topics["journal"], key=key, value=None)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    admin.alter_group_offsets(
        settings.app_id,
        {TopicPartition(settings.topic_embedded, 0): OffsetAndMetadata(end, "", -1)},
    )
    stories = sum(1 for v in records["stories"].values() if v is not None)
    return RebuildResult(test.read, stories, written, deleted, end)
