"""What every agent class holds: the parts of the built pipeline that all stages use."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import AgentT

from streams.pipeline import Pipeline

__all__ = ["StageAgent"]


class StageAgent:
    """The app, the worker's settings (its id and batching), the metrics, tables and topics,
    and the Faust agent once ``register`` has declared it. A subclass takes the settings
    groups of its own stage."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.app: faust.App = pipeline.app
        self.worker = pipeline.settings.worker
        self.metrics = pipeline.metrics
        self.tables = pipeline.tables
        self.topics = pipeline.topics
        self.agent: AgentT[Any] | None = None  # set by register
