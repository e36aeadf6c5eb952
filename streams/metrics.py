"""Storywatch's Prometheus metrics, registered on a registry that the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PipelineMetrics"]

# Why these buckets: embedding batches take ~20 ms (one headline) to ~10 s (32 long articles
# on 2 CPU cores); end-to-end latency targets p99 <= 2 s, so resolve 50 ms .. 60 s.
_EMBED_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LATENCY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Why these buckets: a healthy receiver answers in tens of ms; retries with backoff stretch a
# delivery to minutes, and the retry budget ends near 10 minutes.
_DELIVERY_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class PipelineMetrics:
    """All metric families of the pipeline, on ``registry`` (never the global default)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.articles_consumed = Counter(
            "storywatch_articles_consumed",
            "Records read from the articles topic.",
            registry=registry,
        )
        self.articles_invalid = Counter(
            "storywatch_articles_invalid",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.articles_duplicate = Counter(
            "storywatch_articles_duplicate",
            "Exact re-sends (same id or same normalized title and text), by kind.",
            ["kind"],
            registry=registry,
        )
        self.articles_truncated = Counter(
            "storywatch_articles_truncated",
            "Articles cut to STORYWATCH_MAX_ARTICLE_TEXT_BYTES (flagged with their size).",
            registry=registry,
        )
        self.stream_time_capped = Counter(
            "storywatch_stream_time_capped",
            "Records whose stream time ran past the reader's clock + "
            "STORYWATCH_CLOCK_TOLERANCE_MINUTES and were processed at the capped time.",
            registry=registry,
        )
        self.replay_header_ignored = Counter(
            "storywatch_replay_header_ignored",
            "Records with a replay-time header that Storywatch did not sign (ignored).",
            registry=registry,
        )
        self.embedding_batch_size = Histogram(
            "storywatch_embedding_batch_size",
            "Articles per embedding batch.",
            buckets=_BATCH_SIZES,
            registry=registry,
        )
        self.embedding_duration = Histogram(
            "storywatch_embedding_duration_seconds",
            "Time to embed one batch.",
            buckets=_EMBED_SECONDS,
            registry=registry,
        )
        self.clustering_decisions = Counter(
            "storywatch_clustering_decisions",
            "Story assignments, by decision (new/joined).",
            ["decision"],
            registry=registry,
        )
        self.stories_merged = Counter(
            "storywatch_stories_merged",
            "Stories merged into another after the fact (STORYWATCH_MERGE_BRIDGES > 0).",
            registry=registry,
        )
        self.clustering_duration = Histogram(
            "storywatch_clustering_duration_seconds",
            "Time to assign one article to a story.",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "storywatch_consumer_lag",
            "Records on an assigned partition not processed yet (end offset - committed).",
            ["topic", "partition"],
            registry=registry,
        )
        self.active_stories = Gauge(
            "storywatch_active_stories", "Stories inside the inactivity window.", registry=registry
        )
        self.alerts_emitted = Counter(
            "storywatch_alerts_emitted",
            "Alerts sent to the alerts topic, by rule.",
            ["rule"],
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "storywatch_end_to_end_latency_seconds",
            "From the article's produce time to its story event.",
            buckets=_LATENCY_SECONDS,
            registry=registry,
        )
        self.subscriptions = Gauge(
            "storywatch_subscriptions",
            "Subscriptions stored, by state (enabled/disabled).",
            ["state"],
            registry=registry,
        )
        self.subscription_matches = Counter(
            "storywatch_subscription_matches",
            "Subscription alerts emitted, by trigger.",
            ["trigger"],
            registry=registry,
        )
        self.deliveries = Counter(
            "storywatch_webhook_deliveries",
            "Webhook delivery attempts, by outcome "
            "(delivered/retry/failed/parked/cancelled/backlog_full).",
            ["outcome"],
            registry=registry,
        )
        self.delivery_retries = Counter(
            "storywatch_webhook_retries",
            "Webhook attempts that will be retried after a backoff.",
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "storywatch_webhook_delivery_latency_seconds",
            "From the alert's outbox entry to the receiver's 2xx (retries included).",
            buckets=_DELIVERY_SECONDS,
            registry=registry,
        )
        self.outbox_depth = Gauge(
            "storywatch_webhook_outbox_depth",
            "Deliveries taken from the outbox and not yet delivered or parked.",
            registry=registry,
        )
