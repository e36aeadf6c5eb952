"""The worker's HTTP surface: the story pages, the subscription API and Prometheus metrics."""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from streams.tables import PipelineTables
from streams.web.stories import register_story_views, story_summary

__all__ = ["register_views", "story_summary"]


def register_views(app: faust.App, tables: PipelineTables, registry: CollectorRegistry) -> None:
    """Add the pages and ``/metrics`` (Faust's sensors + ours, one registry)."""
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=registry, name_prefix="storywatch_faust"
    )
    register_story_views(app, tables)
