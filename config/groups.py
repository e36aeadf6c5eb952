"""The settings grouped by concern: each component receives the group it uses, not all of
:class:`config.Settings`.

The groups hold values only; every default (and its "why") is defined once, on the field of
:class:`config.Settings` of the same name, and ``settings.<group>`` builds the group from those
fields (a group's attribute is named exactly like its setting, so ``STORYWATCH_<NAME>``
is always the variable behind ``group.<name>``). Each setting belongs to exactly one group,
except the meta settings in :data:`META_FIELDS` (tests/unit/test_settings_groups.py checks).

The groups, and what each is for:

- :class:`KafkaSettings` (``settings.kafka``): how every client reaches and logs in to the
  broker (address, TLS, SASL), the local broker `storywatch kafka start` runs (version, port,
  home), durability on the broker (replication, min ISR), and the worker's Kafka client
  behaviour (session timeout, standby replicas, producer linger).
- :class:`TopicSettings` (``settings.topics``): every topic name (the feeds' too), the
  partitions of the spread topics, how long the replayable topics keep records, and the dead
  letter topic's record size (which is also the producer's largest request).
- :class:`WorkerSettings` (``settings.worker``): the Faust worker itself: its app id (the
  consumer group, the changelog prefix and the ``source`` of the events it writes), its local
  state folder, and how the cluster, alert and delivery agents batch their input.
- :class:`EmbedSettings` (``settings.embed``): the validate+embed stage: the model and how it
  runs, the size budget of a record and of its text, how far a record's stream time is
  trusted ahead of the reading stage's clock.
- :class:`EngineSettings` (``settings.engine``): the clustering stage: when an article joins
  a story, when stories merge, the story window, the index, and how far an article's own date
  may run ahead of its stream time.
- :class:`AlertSettings` (``settings.alerts``): the emerging-story rule of the alert stage.
- :class:`WebhookSettings` (``settings.webhooks``): subscriptions and their webhook
  deliveries: which hosts a webhook may reach, timeouts, retries, concurrency and backlog,
  the old secret's grace after a rotation, and how many subscriptions one owner may keep.
- :class:`WebSettings` (``settings.web``): the worker's HTTP server: where it listens, who
  may use the API (tokens) and the dashboard, the request and stream limits of the API.
- :class:`FeedSettings` (``settings.feeds``): polling feeds: how often, which hosts, how much
  and how long a fetch may take, politeness per host, when an article's page is fetched.
  (The feed topics and their partitions and retention are in :class:`TopicSettings`.)
- :class:`KeySettings` (``settings.keys``): the deployment's secret key, which signs the
  replay-time header (embed stage, `storywatch produce`) and seals webhook secrets
  (subscriptions): two concerns share it, so it is a group of its own.

Replay has no group: it has no settings of its own. `storywatch replay` (and rebuild) drive
the same stages as the worker, so they read the groups of those stages (kafka, topics,
embed, engine, alerts, keys) from the one :class:`config.Settings` of the command.

Everything here is frozen; secrets stay :class:`pydantic.SecretStr` (masked in ``repr``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

__all__ = [
    "DERIVED_FIELDS",
    "GROUPS",
    "LOCAL_KEY_NAME",
    "META_FIELDS",
    "AlertSettings",
    "EmbedSettings",
    "EngineSettings",
    "FeedSettings",
    "KafkaSettings",
    "KeySettings",
    "TopicSettings",
    "WebSettings",
    "WebhookSettings",
    "WorkerSettings",
    "build_group",
    "setting_names",
]

#: Settings that belong to no group, with the reason.
META_FIELDS: dict[str, str] = {
    # A profile only fills in the defaults of other settings when they load
    # (config/profiles.py); no component reads it.
    "profile": "applied to the other settings when they load; no component reads it",
}

#: The file name of the key made on first use when none is configured (in
#: ``STORYWATCH_KAFKA_HOME``).
LOCAL_KEY_NAME = "secret-key"

G = TypeVar("G")


def _hosts(spec: str) -> frozenset[str]:
    """A comma-separated host list, lower-cased, IPv6 brackets removed."""
    return frozenset(h.strip().lower().strip("[]") for h in spec.split(",") if h.strip())


def read_secret_file(path: Path) -> str:
    """A secret file's first line (a mounted secret often ends in a newline)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].strip() if lines else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    """How clients reach the broker, the local broker, durability, the worker's client knobs."""

    kafka_bootstrap: str | None
    kafka_sasl_username: str | None
    kafka_sasl_password: SecretStr | None
    kafka_security_protocol: str | None
    kafka_sasl_mechanism: str | None
    kafka_sasl_password_file: Path | None
    kafka_ssl_cafile: Path | None
    kafka_ssl_certfile: Path | None
    kafka_ssl_keyfile: Path | None
    kafka_ssl_key_password: SecretStr | None
    kafka_ssl_check_hostname: bool
    kafka_version: str
    kafka_port: int
    kafka_home: Path
    replication_factor: int
    min_insync_replicas: int
    session_timeout_s: float
    standby_replicas: int
    producer_linger_s: float

    @property
    def bootstrap(self) -> str:
        """The broker address: the configured one, else the local broker's port."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def protocol(self) -> str:
        """The security protocol in force: the configured one, else SASL_PLAINTEXT when a
        username is set, else PLAINTEXT."""
        if self.kafka_security_protocol:
            return self.kafka_security_protocol
        return "SASL_PLAINTEXT" if self.kafka_sasl_username else "PLAINTEXT"

    def sasl_secret(self) -> SecretStr | None:
        """The SASL password: STORYWATCH_KAFKA_SASL_PASSWORD, else the first line of
        STORYWATCH_KAFKA_SASL_PASSWORD_FILE (read now: a rotated secret is seen on restart)."""
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password
        if self.kafka_sasl_password_file is None:
            return None
        return SecretStr(read_secret_file(self.kafka_sasl_password_file))

    @property
    def kafka_dir(self) -> Path:
        """Folder of this Kafka version's jars and local broker."""
        return self.kafka_home / f"kafka-{self.kafka_version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSettings:
    """Every topic's name, the spread topics' partitions, retention, the DLQ record size."""

    topic_articles: str
    topic_dlq: str
    topic_embedded: str
    topic_stories: str
    topic_alerts: str
    topic_subscriptions: str
    topic_deliveries: str
    topic_alerts_dlq: str
    topic_feeds: str
    topic_feed_state: str
    topic_feed_seen: str
    articles_partitions: int
    feed_partitions: int
    articles_retention_days: float
    feed_seen_retention_days: float
    dlq_max_message_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """The Faust worker: its id, local state, and the batching of the story agents."""

    app_id: str
    data_dir: Path
    stage_batch_size: int
    stage_max_wait_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedSettings:
    """The validate+embed stage: the model, its batches, the size budget, the stream clock."""

    model: str
    model_dir: Path
    embed_batch_size: int
    embed_max_wait_s: float
    embed_max_chars: int
    embed_device: str
    embed_backend: str
    embed_max_tokens: int | None
    embed_threads: int | None
    max_record_bytes: int
    max_article_text_bytes: int
    clock_tolerance_minutes: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """The clustering stage: joins, merges, the story window, the index."""

    story_threshold: float
    lexical_weight: float
    entity_share: float
    entity_min: int
    entity_override: float
    candidate_stories: int
    merge_bridges: int
    merge_score: float
    merge_entity_share: float
    window_both_ways: bool
    index_exact_max: int
    index_probes: int
    dup_threshold: float
    story_window_hours: float
    max_event_lead_minutes: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """The emerging-story rule."""

    emerging_min_articles: int
    emerging_min_sources: int
    emerging_window_hours: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    """Subscriptions and their webhook deliveries."""

    webhook_allow_hosts: str
    webhook_timeout_s: float
    webhook_max_attempts: int
    webhook_retry_base_s: float
    webhook_retry_max_s: float
    webhook_concurrency: int
    webhook_receiver_backlog: int
    webhook_secret_grace_s: float
    max_subscriptions_per_owner: int

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The hosts (or host:port) a webhook may reach though private or loopback."""
        return _hosts(self.webhook_allow_hosts)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """The worker's HTTP server: address, tokens, dashboard, API and stream limits."""

    web_host: str
    web_port: int
    api_tokens: SecretStr | None
    api_tokens_file: Path | None
    dashboard_token_required: bool
    dashboard_articles_per_story: int
    api_max_body_bytes: int
    sse_max_streams: int
    sse_max_streams_per_owner: int
    sse_retry_after_s: int
    alerts_history_concurrency: int
    api_tests_per_minute: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings:
    """Polling feeds and fetching article pages."""

    feed_poll_s: float
    feed_allow_hosts: str
    feed_max_bytes: int
    feed_contact: str
    feed_connect_timeout_s: float
    feed_read_timeout_s: float
    feed_total_timeout_s: float
    feed_host_delay_s: float
    feed_teaser_chars: int

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The hosts feeds and article pages may reach though private or loopback."""
        return _hosts(self.feed_allow_hosts)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySettings:
    """The deployment's secret key: configured, else a local key file (made on first use)."""

    secret_key: SecretStr | None
    secret_key_file: Path | None
    #: Derived, not a setting: STORYWATCH_KAFKA_HOME/secret-key, the key used when neither
    #: of the two above is set.
    local_key_file: Path


#: Group attributes that are not settings themselves: (group, attribute) -> what they are.
DERIVED_FIELDS: dict[tuple[type, str], str] = {
    (KeySettings, "local_key_file"): f"STORYWATCH_KAFKA_HOME/{LOCAL_KEY_NAME}",
}

#: The property of :class:`config.Settings` that builds each group.
GROUPS: dict[str, type] = {
    "kafka": KafkaSettings,
    "topics": TopicSettings,
    "worker": WorkerSettings,
    "embed": EmbedSettings,
    "engine": EngineSettings,
    "alerts": AlertSettings,
    "webhooks": WebhookSettings,
    "web": WebSettings,
    "feeds": FeedSettings,
    "keys": KeySettings,
}


def setting_names(group: type) -> tuple[str, ...]:
    """The settings a group holds (its attributes less the derived ones)."""
    return tuple(f.name for f in fields(group) if (group, f.name) not in DERIVED_FIELDS)


def build_group(group: type[G], settings: Any, **derived: Any) -> G:
    """``group`` filled from the same-named fields of ``settings`` (and ``derived``)."""
    return group(**{name: getattr(settings, name) for name in setting_names(group)}, **derived)
