"""The Faust application: one module-level app, its topics, tables and metrics.

Faust needs the app and topic names when agent modules are imported, so this module reads the
settings on import (and, with TLS or a password file configured, the CA, client certificate
and password files they name: Faust takes its broker credentials when the app is built); it
does no other I/O and starts no threads (the model loads on the first batch, Kafka is
reached when the worker starts). Agents import this module; it never imports them:
Faust's autodiscovery finds them when the worker starts.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from config.settings import Settings, load_settings
from streams.engine.embedding import Embedder
from streams.feeds.metrics import FeedMetrics
from streams.feeds.views import FeedViews
from streams.kafka.connection import KafkaConnection
from streams.kafka.consumer_lag import ConsumerLag
from streams.kafka.transport import DurableApp
from streams.metrics import PipelineMetrics
from streams.model_thread import ModelThread
from streams.read_model import EventFeed, ReadModelFollower, ReadModelMetrics, StoryReadModel
from streams.subscriptions.store import SubscriptionStore
from streams.tables import PipelineTables, declare_tables
from streams.topics import declare_topics
from streams.web import register_views
from streams.web.feeds import register_feed_views
from streams.web.http import ApiTokens

__all__ = [
    "app",
    "dead_letters",
    "embedder",
    "feed_metrics",
    "feed_views",
    "metrics",
    "model_thread",
    "read_model",
    "registry",
    "settings",
    "subscription_store",
    "tables",
    "topics",
]


def _create_app(settings: Settings) -> faust.App:
    connection = KafkaConnection.from_settings(settings.kafka)
    return DurableApp(
        settings.app_id,
        broker=f"kafka://{connection.bootstrap}",
        broker_credentials=connection.faust_credentials(),  # TLS and the login, if any
        autodiscover=["agents"],
        origin="streams.app",
        store="memory://",  # tables are rebuilt from their Kafka changelogs on start
        datadir=str(settings.data_dir),
        topic_partitions=1,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Faust's debug routes (/router, /table/..., /graph, stats) would serve table
        # contents without a token: off. Our pages and APIs are registered by streams.web.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=3.0,
        table_standby_replicas=settings.standby_replicas,
        producer_max_request_size=settings.dlq_max_message_bytes,
        producer_linger=settings.producer_linger_s,  # why its default: config/settings.py
        # Why 1 s: the stories a dashboard shows lag by at most this; offsets commit often
        # enough that a crash replays little (processing is idempotent by key anyway).
        broker_commit_interval=1.0,
        # Why 10 min: a first batch of long articles on a cold CPU model can take minutes;
        # Faust must not declare the agent stuck meanwhile.
        stream_processing_timeout=600.0,
    )


settings = load_settings()
registry = CollectorRegistry()
metrics = PipelineMetrics(registry)
app = _create_app(settings)
topics, dead_letters = declare_topics(app, settings.topics, metrics.articles_invalid)
tables: PipelineTables = declare_tables(app, min_insync_replicas=settings.min_insync_replicas)
embedder = Embedder.from_settings(settings.embed)
model_thread = ModelThread()


async def _send_subscription(key: str, record: dict[str, Any] | None) -> int:
    """Write one subscription (None: a tombstone), wait for the broker's acknowledgement and
    answer the record's offset."""
    producer = await app.maybe_start_producer()
    value = None if record is None else json.dumps(record).encode()
    metadata = await producer.send_and_wait(
        settings.topic_subscriptions,
        json.dumps(key).encode(),
        value,
        partition=None,
        timestamp=None,
        headers=None,
    )
    return int(metadata.offset)


subscription_store = SubscriptionStore(
    settings.kafka, settings.topics, settings.keys, _send_subscription
)
app.task(subscription_store.run)  # registered now, started with the worker
# Counted at each scrape: a subscription created, disabled or deleted shows at once, not only
# once the next story event reaches the matcher.
for _state, _enabled in (("enabled", True), ("disabled", False)):
    metrics.subscriptions.labels(_state).set_function(
        partial(subscription_store.count, enabled=_enabled)
    )
app.task(ConsumerLag(app, metrics.consumer_lag).run)

# The dashboard's read model: every worker builds its own from the stories and alerts
# topics (the story table lives only on the worker holding its partition).
_read_model_metrics = ReadModelMetrics(registry)
read_model = StoryReadModel(
    window_s=settings.story_window_hours * 3600.0,
    articles_per_story=settings.dashboard_articles_per_story,
    feed=EventFeed(on_clients=_read_model_metrics.sse_clients.set),
    on_change=_read_model_metrics.on_change,
)
app.task(  # registered now, started with the worker
    ReadModelFollower(
        settings.kafka,
        settings.topics,
        read_model,
        on_caught_up=lambda: _read_model_metrics.caught_up.set(1),
    ).run
)


async def _send_raw(topic: str, key: bytes, value: bytes | None) -> Any:
    """Hand one record to the (acks=all) producer; answers the future of its acknowledgement."""
    producer = await app.maybe_start_producer()
    return await producer.send(topic, key, value, partition=None, timestamp=None, headers=None)


# Feeds (agents/feeds.py polls them): every worker follows the feeds, their poll state and
# the seen article ids; each polls the feeds of the feeds-topic partitions assigned to it.
feed_metrics = FeedMetrics(registry)
feed_views = FeedViews(settings.kafka, settings.topics, _send_raw)
for _view in feed_views.views:
    app.task(_view.run)  # registered now, started with the worker

register_views(
    app,
    tables=tables,
    topics=topics,
    kafka=settings.kafka,
    topic_names=settings.topics,
    web=settings.web,
    webhooks=settings.webhooks,
    app_id=settings.app_id,
    registry=registry,
    store=subscription_store,
    read_model=read_model,
)
register_feed_views(app, feed_views, ApiTokens(settings.web))
