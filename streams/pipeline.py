"""The composition root: :func:`build_app` builds one worker's pipeline from the settings.

Nothing here runs at import: the Faust app, its topics, tables, metrics, the embedder, the
subscription store, the dashboard's read model, the feed views and the web routes are built
when :func:`build_app` is called (``storywatch worker``, and each test that needs a worker
builds its own). With TLS or a password file configured, building reads the CA, client
certificate and password files they name (Faust takes its broker credentials when the app is
built); it does no other I/O and starts no threads: the model loads on the first batch (or
when ``storywatch worker`` loads it up front), Kafka is reached when the worker starts.

The agents are registered last, each module's ``register(pipeline)`` on the built app. The
agent modules are named here, not imported at the top, the way Faust's autodiscovery names
its packages: imports keep flowing one way (``config`` <- ``streams`` <- ``agents``).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from config.settings import Settings
from streams.contracts.dead_letters import DeadLetters
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
from streams.topics import PipelineTopics, declare_topics
from streams.web import register_views
from streams.web.feeds import register_feed_views
from streams.web.http import ApiTokens

__all__ = ["AGENT_MODULES", "Pipeline", "build_app", "build_pipeline"]

# Each module has ``register(pipeline)``, which declares its agents (and timers) on the app
# under fixed names: a consumer group's members and the changelogs stay the same from one
# release to the next.
AGENT_MODULES = (
    "agents.embed",
    "agents.cluster",
    "agents.alerts",
    "agents.deliveries",
    "agents.feeds",
)


@dataclass
class Pipeline:
    """One worker's parts, built by :func:`build_pipeline`; ``agents`` holds what each agent
    module registered (by module name, e.g. ``agents["agents.cluster"]``)."""

    settings: Settings
    registry: CollectorRegistry  # every metric of this worker, served on /metrics
    metrics: PipelineMetrics
    app: faust.App
    topics: PipelineTopics
    dead_letters: DeadLetters  # the one dead-letter sender of every stage
    tables: PipelineTables
    embedder: Embedder
    model_thread: ModelThread  # the model's one thread, shared by everything that embeds
    subscription_store: SubscriptionStore
    read_model: StoryReadModel  # the dashboard's stories, built from the topics
    feed_views: FeedViews
    feed_metrics: FeedMetrics
    agents: dict[str, Any] = field(default_factory=dict)


def _create_app(settings: Settings) -> faust.App:
    connection = KafkaConnection.from_settings(settings.kafka)
    return DurableApp(
        settings.app_id,
        broker=f"kafka://{connection.bootstrap}",
        broker_credentials=connection.faust_credentials(),  # TLS and the login, if any
        autodiscover=False,  # the agents are registered by build_app, by name
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


class _AppProducer:
    """Writes through the app's (acks=all) producer, for the parts built before the agents."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def send_raw(self, topic: str, key: bytes, value: bytes | None) -> Any:
        """Hand one record to the producer; answers the future of its acknowledgement."""
        producer = await self.app.maybe_start_producer()
        return await producer.send(topic, key, value, partition=None, timestamp=None, headers=None)

    async def send_json_and_wait(self, topic: str, key: str, record: Any) -> int:
        """Write one JSON record (None: a tombstone), wait for the broker's acknowledgement and
        answer the record's offset."""
        producer = await self.app.maybe_start_producer()
        value = None if record is None else json.dumps(record).encode()
        metadata = await producer.send_and_wait(
            topic, json.dumps(key).encode(), value, partition=None, timestamp=None, headers=None
        )
        return int(metadata.offset)


def build_pipeline(settings: Settings) -> Pipeline:
    """The app with its topics, tables, stores, read model, background tasks and routes; no
    agents yet (:func:`build_app` adds them)."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    app = _create_app(settings)
    producer = _AppProducer(app)
    topics, dead_letters = declare_topics(app, settings.topics, metrics.articles_invalid)
    tables = declare_tables(app, min_insync_replicas=settings.min_insync_replicas)

    subscription_store = SubscriptionStore(
        settings.kafka,
        settings.topics,
        settings.keys,
        partial(producer.send_json_and_wait, settings.topic_subscriptions),
    )
    app.task(subscription_store.run)  # registered now, started with the worker
    # Counted at each scrape: a subscription created, disabled or deleted shows at once, not
    # only once the next story event reaches the matcher.
    for state, enabled in (("enabled", True), ("disabled", False)):
        metrics.subscriptions.labels(state).set_function(
            partial(subscription_store.count, enabled=enabled)
        )
    app.task(ConsumerLag(app, metrics.consumer_lag).run)

    # The dashboard's read model: every worker builds its own from the stories and alerts
    # topics (the story table lives only on the worker holding its partition).
    read_model_metrics = ReadModelMetrics(registry)
    read_model = StoryReadModel(
        window_s=settings.story_window_hours * 3600.0,
        articles_per_story=settings.dashboard_articles_per_story,
        feed=EventFeed(on_clients=read_model_metrics.sse_clients.set),
        on_change=read_model_metrics.on_change,
    )
    app.task(
        ReadModelFollower(
            settings.kafka,
            settings.topics,
            read_model,
            on_caught_up=lambda: read_model_metrics.caught_up.set(1),
        ).run
    )

    # Feeds (agents/feeds.py polls them): every worker follows the feeds, their poll state
    # and the seen article ids; each polls the feeds of the feeds-topic partitions assigned
    # to it.
    feed_views = FeedViews(settings.kafka, settings.topics, producer.send_raw)
    for view in feed_views.views:
        app.task(view.run)

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
    return Pipeline(
        settings=settings,
        registry=registry,
        metrics=metrics,
        app=app,
        topics=topics,
        dead_letters=dead_letters,
        tables=tables,
        embedder=Embedder.from_settings(settings.embed),
        model_thread=ModelThread(),
        subscription_store=subscription_store,
        read_model=read_model,
        feed_views=feed_views,
        feed_metrics=FeedMetrics(registry),
    )


def build_app(settings: Settings, agent_modules: tuple[str, ...] = AGENT_MODULES) -> Pipeline:
    """The whole worker: :func:`build_pipeline`, then each agent module's ``register``."""
    pipeline = build_pipeline(settings)
    for name in agent_modules:
        pipeline.agents[name] = importlib.import_module(name).register(pipeline)
    return pipeline
