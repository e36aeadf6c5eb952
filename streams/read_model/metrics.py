"""The read model's Prometheus metrics, on the registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ReadModelMetrics"]


class ReadModelMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.applied = Counter(
            "storywatch_dashboard_events_applied",
            "Records the dashboard's read model read, by kind "
            "(story/merge/alert/replayed/skipped).",
            ["kind"],
            registry=registry,
        )
        self.stories = Gauge(
            "storywatch_dashboard_stories",
            "Active stories held by this worker's dashboard read model.",
            registry=registry,
        )
        self.sse_clients = Gauge(
            "storywatch_dashboard_sse_clients",
            "Browsers connected to /api/events/stream on this worker.",
            registry=registry,
        )
        self.caught_up = Gauge(
            "storywatch_dashboard_caught_up",
            "1 once the read model has read the stories and alerts topics to their end.",
            registry=registry,
        )

    def on_change(self, kind: str, stories: int) -> None:
        self.applied.labels(kind).inc()
        self.stories.set(stories)
