"""Settings: defaults, env overrides, immutability, secrets, and clear errors."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from config.exceptions import SettingsError, StorywatchError
from config.settings import DEFAULT_MODEL, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STORYWATCH_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("STORYWATCH_"):
            monkeypatch.delenv(name)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def test_defaults() -> None:
    s = Settings()
    assert s.kafka_bootstrap is None
    assert s.kafka_sasl_password is None
    assert s.kafka_port == 9092
    assert s.topic_articles == "articles"
    assert s.topic_dlq == "articles-dlq"
    assert s.topic_embedded == "articles-embedded"
    assert s.topic_stories == "stories"
    assert s.topic_alerts == "alerts"
    assert s.articles_partitions == 1
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 6066
    assert s.max_record_bytes == 1_000_000
    assert s.model == DEFAULT_MODEL
    assert s.embed_batch_size == 32
    assert s.story_threshold == pytest.approx(0.35)
    assert s.lexical_weight == pytest.approx(0.30)
    assert s.entity_share == pytest.approx(0.10)
    assert s.entity_min == 6
    assert s.entity_override == pytest.approx(0.90)
    assert s.candidate_stories == 5
    assert (s.index_exact_max, s.index_probes) == (50_000, 16)
    assert (s.embed_backend, s.embed_max_tokens) == ("torch", None)
    assert (s.stage_batch_size, s.stage_max_wait_s) == (64, pytest.approx(0.05))
    assert s.dup_threshold == pytest.approx(0.90)
    assert s.story_window_hours == pytest.approx(72.0)
    assert (s.emerging_min_articles, s.emerging_min_sources) == (5, 3)
    assert s.emerging_window_hours == pytest.approx(6.0)
    # The dup bar must sit above the story bar, or no article could join a story un-duplicated.
    assert s.dup_threshold > s.story_threshold
    assert s.kafka_dir == s.kafka_home / f"kafka-{s.kafka_version}"


def test_env_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_WEB_PORT", "7077")
    monkeypatch.setenv("STORYWATCH_STORY_THRESHOLD", "0.7")
    monkeypatch.setenv("STORYWATCH_TOPIC_ARTICLES", "news-in")
    s = Settings()
    assert s.web_port == 7077
    assert isinstance(s.web_port, int)
    assert s.story_threshold == pytest.approx(0.7)
    assert s.topic_articles == "news-in"
    # Untouched fields keep their defaults.
    assert s.web_host == "127.0.0.1"


def test_load_settings_reads_env_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_WEB_PORT", "7078")
    first = load_settings()
    assert first.web_port == 7078
    monkeypatch.setenv("STORYWATCH_WEB_PORT", "7079")
    assert load_settings() is first
    load_settings.cache_clear()
    assert load_settings().web_port == 7079


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.web_port = 1  # type: ignore[misc]
    assert s.web_port == 6066


def test_password_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_USERNAME", "someone")
    monkeypatch.setenv("STORYWATCH_KAFKA_SASL_PASSWORD", "hunter2-secret")
    s = Settings()
    assert isinstance(s.kafka_sasl_password, SecretStr)
    assert s.kafka_sasl_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(s)
    assert "hunter2-secret" not in s.model_dump_json()
    assert "hunter2-secret" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("STORYWATCH_STORY_THRESHOLD", "3"),
        ("STORYWATCH_STORY_THRESHOLD", "-1"),
        ("STORYWATCH_STORY_THRESHOLD", "0"),
        ("STORYWATCH_LEXICAL_WEIGHT", "1.5"),
        ("STORYWATCH_ENTITY_SHARE", "-0.1"),
        ("STORYWATCH_ENTITY_MIN", "0"),
        ("STORYWATCH_ENTITY_OVERRIDE", "0"),
        ("STORYWATCH_CANDIDATE_STORIES", "0"),
        ("STORYWATCH_INDEX_PROBES", "0"),
        ("STORYWATCH_EMBED_BACKEND", "onnx"),
        ("STORYWATCH_EMBED_MAX_TOKENS", "4"),
        ("STORYWATCH_STAGE_MAX_WAIT_S", "0"),
        ("STORYWATCH_DUP_THRESHOLD", "0"),
        ("STORYWATCH_WEB_PORT", "70000"),
        ("STORYWATCH_EMBED_BATCH_SIZE", "not-a-number"),
        ("STORYWATCH_ARTICLES_PARTITIONS", "0"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert var in str(info.value)
    assert isinstance(info.value, StorywatchError)
    assert isinstance(info.value, ValueError)


def test_story_threshold_may_exceed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bar is on dense cosine + lexical bonus, which can exceed 1 (upper bound 2).
    monkeypatch.setenv("STORYWATCH_STORY_THRESHOLD", "2")
    assert load_settings().story_threshold == pytest.approx(2.0)
    assert Settings(story_threshold=1.2).story_threshold == pytest.approx(1.2)


def test_invalid_value_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_STORY_THRESHOLD", "3")
    with pytest.raises(SettingsError):
        load_settings()
    monkeypatch.setenv("STORYWATCH_STORY_THRESHOLD", "0.6")
    assert load_settings().story_threshold == pytest.approx(0.6)


def test_bootstrap_without_port_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="host:port"):
        Settings(kafka_bootstrap="localhost")
    monkeypatch.setenv("STORYWATCH_KAFKA_BOOTSTRAP", "broker.example")
    with pytest.raises(SettingsError, match="STORYWATCH_KAFKA_BOOTSTRAP"):
        load_settings()


def test_bootstrap_with_port_is_kept_and_blank_means_unset() -> None:
    assert Settings(kafka_bootstrap=" 10.0.0.5:9093 ").kafka_bootstrap == "10.0.0.5:9093"
    assert Settings(kafka_bootstrap="   ").kafka_bootstrap is None
    assert Settings(kafka_bootstrap="").kafka_bootstrap is None


def test_webhook_retry_delays_are_checked_when_settings_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A base delay above the maximum used to be refused only when the delivery agent
    # started; now loading the settings refuses it, naming both variables.
    monkeypatch.setenv("STORYWATCH_WEBHOOK_RETRY_BASE_S", "600")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "STORYWATCH_WEBHOOK_RETRY_BASE_S" in str(info.value)
    assert "STORYWATCH_WEBHOOK_RETRY_MAX_S" in str(info.value)
    monkeypatch.setenv("STORYWATCH_WEBHOOK_RETRY_MAX_S", "600")
    assert load_settings().webhook_retry_base_s == 600.0
