"""Shared fixtures: one real Kafka broker per test run, the real embedding model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.exceptions import StorywatchError
from config.settings import Settings
from streams.engine.embedding import Embedder

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT_ROOT / "streams" / "samples" / "uci-headlines-sample.jsonl"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker: STORYWATCH_KAFKA_BOOTSTRAP if set, else a local KRaft broker started
    for this run. A broker that cannot start FAILS the tests (never skips them)."""
    from streams.kafka.local import free_port, port_is_open, start_broker, stop_broker

    configured = os.environ.get("STORYWATCH_KAFKA_BOOTSTRAP")
    if configured:
        host, _, port = configured.split(",")[0].rpartition(":")
        if not port_is_open(host, int(port), timeout_s=5):
            pytest.fail(
                f"STORYWATCH_KAFKA_BOOTSTRAP={configured} does not answer: start it or "
                "unset the variable so the tests start their own broker"
            )
        yield configured
        return
    settings = Settings()
    data_dir = tmp_path_factory.mktemp("kafka")
    try:
        info = start_broker(
            settings.kafka_dir, settings.kafka_version, port=free_port(), data_dir=data_dir
        )
    except StorywatchError as exc:
        pytest.fail(f"the test Kafka broker did not start: {exc}")
    yield info.bootstrap
    stop_broker(data_dir)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model (all-MiniLM-L6-v2 from its package, offline), loaded once."""
    model = Embedder()
    model.load()
    return model
