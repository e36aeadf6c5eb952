"""Changelog-backed Faust tables: the durable state of clustering and alerting."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT

__all__ = ["PipelineTables", "declare_tables"]


@dataclass(frozen=True)
class PipelineTables:
    stories: TableT  # story id -> story record (centroid, size, sources, times, headline)
    groups: TableT  # near-duplicate group id -> group record (vector, size, title)
    seen: TableT  # "id:<article id>" or content key -> {story_id, group_id, ts}
    alerts: TableT  # story id -> alert rule state


def declare_tables(app: faust.App) -> PipelineTables:
    """One partition each: they follow ``articles-embedded`` / ``stories`` (one partition)."""
    return PipelineTables(
        stories=app.Table("story-state", default=None, partitions=1),
        groups=app.Table("story-groups", default=None, partitions=1),
        seen=app.Table("story-seen", default=None, partitions=1),
        alerts=app.Table("alert-state", default=None, partitions=1),
    )
