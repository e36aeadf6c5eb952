"""The worker's HTTP surface: the dashboard pages and story API (from the read model), the
subscription and alert APIs and Prometheus metrics."""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, Gauge

from config.settings import Settings
from streams.alert_history import AlertFanout, AlertReader
from streams.read_model import StoryReadModel
from streams.subscriptions.ssrf import WebhookGuard
from streams.subscriptions.store import SubscriptionStore
from streams.tables import PipelineTables
from streams.topics import PipelineTopics
from streams.web.access import ReadAccess
from streams.web.alert_views import register_alert_views
from streams.web.health import Readiness, register_health_views
from streams.web.http import ApiTokens
from streams.web.limits import HttpLimitMetrics, RateLimit, StreamSlots, WorkGate
from streams.web.live import register_live_views
from streams.web.pages import register_pages
from streams.web.stories import register_story_views, story_summary
from streams.web.subscriptions import SubscriptionService, register_subscription_views

__all__ = ["register_views", "story_summary"]


def register_views(
    app: faust.App,
    *,
    tables: PipelineTables,
    topics: PipelineTopics,
    settings: Settings,
    registry: CollectorRegistry,
    store: SubscriptionStore,
    read_model: StoryReadModel,
) -> None:
    """Add the pages, the APIs, ``/healthz`` / ``/livez`` and ``/metrics`` (Faust's sensors
    + ours, one registry)."""
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=registry, name_prefix="storywatch_faust"
    )
    register_health_views(app, Readiness(app, ("the subscriptions topic", store)))
    tokens = ApiTokens(settings)
    access = ReadAccess(settings, tokens)
    limits = HttpLimitMetrics(registry)
    # One pool of stream slots for both SSE routes: the cap is on what a worker holds open.
    slots = StreamSlots(
        settings.sse_max_streams,
        settings.sse_max_streams_per_owner,
        settings.sse_retry_after_s,
        limits,
    )
    register_pages(app)
    register_story_views(app, read_model, access)
    register_live_views(app, read_model, access, slots)
    guard = WebhookGuard(settings.webhook_allowed_hosts)
    tests = RateLimit(settings.api_tests_per_minute, "/api/subscriptions/{id}/test", limits)
    service = SubscriptionService(store, topics.deliveries, settings, guard, tests)
    register_subscription_views(app, service, tokens, tables.delivery_log)
    readers = Gauge(
        "storywatch_alerts_readers",
        "Kafka consumers reading the alerts topic for the HTTP API now (the live streams' "
        "shared reader, resuming streams' gap reads and history requests).",
        registry=registry,
    )
    reader = AlertReader(settings, on_consumers=readers.set)
    fanout = AlertFanout(reader)
    app.task(fanout.run)  # registered now; it reads Kafka once the first stream opens
    history = WorkGate(
        settings.alerts_history_concurrency, "/api/alerts", settings.sse_retry_after_s, limits
    )
    register_alert_views(app, reader, fanout, tokens, slots, history)
