"""Changelog-backed Faust tables: the durable state of clustering, alerting and delivery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT

__all__ = ["PipelineTables", "SinglePartitionTable", "declare_tables"]


class SinglePartitionTable(faust.Table):
    """A table of ONE partition whose writes may happen after a batch's iteration.

    Faust takes a write's changelog partition from "the event being processed" and refuses
    writes outside one; the agents here write a whole batch's changes once, after taking it
    (and the delivery agent from its send tasks). With one partition the answer is always 0.
    """

    def partition_for_key(self, key: Any) -> int:  # listed in streams/kafka/overrides.py
        return 0


@dataclass(frozen=True)
class PipelineTables:
    stories: TableT  # story id -> story record (centroid, size, sources, times, headline)
    groups: TableT  # near-duplicate group id -> group record (vector, size, title)
    seen: TableT  # "id:<article id>" -> {story_id, group_id, ts, terms, entities, content}
    journal: TableT  # "last" -> the last cluster batch's records for the three tables above
    alerts: TableT  # story id -> alert rule state
    matches: TableT  # story id -> subscription matching state (phrases seen, fired triggers)
    receipts: TableT  # webhook-id -> final outcome of that delivery (delivered / parked)
    delivery_log: TableT  # subscription id -> its recent delivery attempts (newest last)


# Why 16 MiB: one journal record holds a whole batch's story, group and seen records (a
# story record is a few KiB; 64 articles touch at most 64 of each).
_JOURNAL_MAX_BYTES = 16 * 1024 * 1024


def _table(app: faust.App, name: str, min_insync: int, **options: Any) -> TableT:
    configs = dict(options.pop("extra_topic_configs", {}))
    if min_insync > 1:  # on a cluster: an acked changelog write is on this many brokers
        configs["min.insync.replicas"] = str(min_insync)
    table = SinglePartitionTable(
        app,
        name=name,
        default=None,
        partitions=1,
        beacon=app.tables.beacon,
        extra_topic_configs=configs,
        **options,
    )
    app.tables.add(table)  # what app.Table() does, with this class
    return table


def declare_tables(app: faust.App, *, min_insync_replicas: int = 1) -> PipelineTables:
    """One partition each: they follow ``articles-embedded`` / ``stories`` / ``deliveries``
    (one partition each). The subscriptions are not a table: streams/subscriptions/store.py.
    Their changelogs get the app's replication factor and ``min_insync_replicas``."""
    n = min_insync_replicas
    return PipelineTables(
        stories=_table(app, "story-state", n),
        groups=_table(app, "story-groups", n),
        seen=_table(app, "story-seen", n),
        journal=_table(
            app,
            "cluster-journal",
            n,
            extra_topic_configs={"max.message.bytes": str(_JOURNAL_MAX_BYTES)},
        ),
        alerts=_table(app, "alert-state", n),
        matches=_table(app, "subscription-matches", n),
        receipts=_table(app, "delivery-receipts", n),
        delivery_log=_table(app, "delivery-log", n),
    )
