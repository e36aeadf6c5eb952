"""The worker's HTTP surface: the dashboard pages and story API (from the read model), the
subscription and alert APIs and Prometheus metrics."""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, Gauge

from config.groups import KafkaSettings, TopicSettings, WebhookSettings, WebSettings
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
    kafka: KafkaSettings,
    topic_names: TopicSettings,
    web: WebSettings,
    webhooks: WebhookSettings,
    app_id: str,
    registry: CollectorRegistry,
    store: SubscriptionStore,
    read_model: StoryReadModel,
) -> None:
    """Add the pages, the APIs, ``/healthz`` / ``/livez`` and ``/metrics`` (Faust's sensors
    + ours, one registry). The settings come as the groups the views use (config/groups.py):
    ``web`` for the server's limits and tokens, ``webhooks`` for the subscription API,
    ``kafka`` and ``topic_names`` for the alert history's reader; ``app_id`` is the
    ``source`` of test alerts."""
    setup_prometheus_sensors(
        app, pattern="/metrics", registry=registry, name_prefix="storywatch_faust"
    )
    register_health_views(app, Readiness(app, ("the subscriptions topic", store)))
    tokens = ApiTokens(web)
    access = ReadAccess(web, tokens)
    limits = HttpLimitMetrics(registry)
    # One pool of stream slots for both SSE routes: the cap is on what a worker holds open.
    slots = StreamSlots(
        web.sse_max_streams,
        web.sse_max_streams_per_owner,
        web.sse_retry_after_s,
        limits,
    )
    register_pages(app)
    register_story_views(app, read_model, access)
    register_live_views(app, read_model, access, slots)
    guard = WebhookGuard(webhooks.allowed_hosts)
    tests = RateLimit(web.api_tests_per_minute, "/api/subscriptions/{id}/test", limits)
    service = SubscriptionService(
        store, topics.deliveries, guard, tests, web=web, webhooks=webhooks, app_id=app_id
    )
    register_subscription_views(app, service, tokens, tables.delivery_log)
    readers = Gauge(
        "storywatch_alerts_readers",
        "Kafka consumers reading the alerts topic for the HTTP API now (the live streams' "
        "shared reader, resuming streams' gap reads and history requests).",
        registry=registry,
    )
    reader = AlertReader(kafka, topic_names.topic_alerts, on_consumers=readers.set)
    fanout = AlertFanout(reader)
    app.task(fanout.run)  # registered now; it reads Kafka once the first stream opens
    history = WorkGate(web.alerts_history_concurrency, "/api/alerts", web.sse_retry_after_s, limits)
    register_alert_views(app, reader, fanout, tokens, slots, history)
