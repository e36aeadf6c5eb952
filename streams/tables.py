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

    def partition_for_key(self, key: Any) -> int:
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


def _table(app: faust.App, name: str, **options: Any) -> TableT:
    table = SinglePartitionTable(
        app, name=name, default=None, partitions=1, beacon=app.tables.beacon, **options
    )
    app.tables.add(table)  # what app.Table() does, with this class
    return table


def declare_tables(app: faust.App) -> PipelineTables:
    """One partition each: they follow ``articles-embedded`` / ``stories`` / ``deliveries``
    (one partition each). The subscriptions are not a table: streams/subscription_store.py."""
    return PipelineTables(
        stories=_table(app, "story-state"),
        groups=_table(app, "story-groups"),
        seen=_table(app, "story-seen"),
        journal=_table(
            app,
            "cluster-journal",
            extra_topic_configs={"max.message.bytes": str(_JOURNAL_MAX_BYTES)},
        ),
        alerts=_table(app, "alert-state"),
        matches=_table(app, "subscription-matches"),
        receipts=_table(app, "delivery-receipts"),
        delivery_log=_table(app, "delivery-log"),
    )
