"""Changelog-backed Faust tables: the durable state of clustering and alerting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TableT

__all__ = ["PipelineTables", "SinglePartitionTable", "declare_tables"]


class SinglePartitionTable(faust.Table):
    """A table of ONE partition whose writes may happen after a batch's iteration.

    Faust takes a write's changelog partition from "the event being processed" and refuses
    writes outside one; the agents here write a whole batch's changes once, after taking it.
    With one partition the answer is always 0, whatever the event.
    """

    def partition_for_key(self, key: Any) -> int:
        return 0


@dataclass(frozen=True)
class PipelineTables:
    stories: TableT  # story id -> story record (centroid, size, sources, times, headline)
    groups: TableT  # near-duplicate group id -> group record (vector, size, title)
    seen: TableT  # "id:<article id>" -> {story_id, group_id, ts, terms, entities, content}
    alerts: TableT  # story id -> alert rule state


def _table(app: faust.App, name: str) -> TableT:
    table = SinglePartitionTable(
        app, name=name, default=None, partitions=1, beacon=app.tables.beacon
    )
    app.tables.add(table)  # what app.Table() does, with this class
    return table


def declare_tables(app: faust.App) -> PipelineTables:
    """One partition each: they follow ``articles-embedded`` / ``stories`` (one partition)."""
    return PipelineTables(
        stories=_table(app, "story-state"),
        groups=_table(app, "story-groups"),
        seen=_table(app, "story-seen"),
        alerts=_table(app, "alert-state"),
    )
