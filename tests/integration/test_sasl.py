"""A broker whose client listener is SASL_PLAINTEXT (PLAIN): the worker, the producer, the
watch reader and the subscription store log in with STORYWATCH_KAFKA_SASL_*; a wrong login
stops the worker at start with a message that names the settings, never the password."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer

from config.settings import Settings
from streams.engine.offline import read_jsonl
from streams.kafka_local import free_port, start_broker, stop_broker
from streams.producer import produce_rows
from tests.conftest import SAMPLE
from tests.integration.worker_process import WorkerRun

pytestmark = [pytest.mark.kafka]

USER = "storywatch"
# Why 40: enough articles for several stories; the point is the login, not the load.
ARTICLES = 40


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings()
    password = "pw-" + secrets.token_hex(12)
    data_dir = tmp_path_factory.mktemp("sasl-broker")
    info = start_broker(
        settings.kafka_dir,
        settings.kafka_version,
        port=free_port(),
        data_dir=data_dir,
        sasl_users={USER: password},
    )
    auth = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
    }
    yield {"bootstrap": info.bootstrap, "password": password, "auth": auth}
    stop_broker(data_dir)


def test_a_worker_logs_in_with_sasl_and_processes_the_stream(
    sasl_broker: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    worker = WorkerRun(sasl_broker["bootstrap"], tmp_path_factory.mktemp("sasl-worker"))
    worker.settings.update(
        {
            "STORYWATCH_KAFKA_SASL_USERNAME": USER,
            "STORYWATCH_KAFKA_SASL_PASSWORD": sasl_broker["password"],
            "STORYWATCH_API_TOKENS": "ops:ops-token-0123456789",
        }
    )
    rows = read_jsonl(SAMPLE)[:ARTICLES]
    try:
        worker.start()
        produce_rows(rows, worker.bootstrap, worker.topic("articles"), auth=sasl_broker["auth"])
        consumer = KafkaConsumer(
            worker.topic("stories"),
            bootstrap_servers=worker.bootstrap,
            auto_offset_reset="earliest",
            value_deserializer=json.loads,
            **sasl_broker["auth"],
        )
        decided: set[str] = set()
        deadline = time.monotonic() + 180
        try:
            while len(decided) < len(rows) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    decided.update(m.value["article_id"] for m in batch)
        finally:
            consumer.close()
        assert decided == {str(r["id"]) for r in rows}, worker.log()[-3000:]
        # The subscription store (its own reader and the app's producer) logs in too.
        import urllib.request

        request = urllib.request.Request(
            f"{worker.url}/api/subscriptions",
            data=json.dumps({"name": "over sasl"}).encode(),
            headers={"Authorization": "Bearer ops-token-0123456789"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
        assert sasl_broker["password"] not in worker.log()
    finally:
        worker.stop()


def test_a_client_without_the_login_is_refused(sasl_broker: dict[str, Any]) -> None:
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaConsumer(
            bootstrap_servers=sasl_broker["bootstrap"],
            request_timeout_ms=5000,
            api_version_auto_timeout_ms=5000,
        ).topics()


def test_a_wrong_password_stops_the_worker_with_a_message_naming_the_settings(
    sasl_broker: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    worker = WorkerRun(sasl_broker["bootstrap"], tmp_path_factory.mktemp("sasl-wrong"))
    worker.settings.update(
        {"STORYWATCH_KAFKA_SASL_USERNAME": USER, "STORYWATCH_KAFKA_SASL_PASSWORD": wrong}
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "STORYWATCH_KAFKA_SASL_PASSWORD" in output, output[-2000:]
    assert wrong not in output and sasl_broker["password"] not in output
