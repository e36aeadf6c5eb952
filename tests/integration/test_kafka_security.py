"""Every security mode against a real broker (SSL, mutual TLS, SASL_SSL with SCRAM-SHA-256 and
SCRAM-SHA-512, SASL_PLAINTEXT with PLAIN): the commands reach it through the one connection
layer. Every refused connection fails within 60 s with one line naming the setting to fix,
writes nothing, and shows no secret; the worker exits non-zero on one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from streams.engine.offline import read_jsonl
from streams.kafka.connection import KafkaConnection
from tests.conftest import SAMPLE
from tests.integration.secure_broker import MODES, SecureBroker, other_ca

pytestmark = [pytest.mark.kafka]

# Why 3 rows: the point is that the connection works, not the load.
ROWS = 3
# The issue's bound on how long a refused connection may take to say so.
FAIL_WITHIN_S = 60.0


def _cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - started


def _connection(env: dict[str, str]) -> KafkaConnection:
    fields = {
        k.removeprefix("STORYWATCH_").lower(): v
        for k, v in env.items()
        if k.startswith("STORYWATCH_KAFKA_")
    }
    return KafkaConnection.from_settings(Settings(**fields).kafka)


def _topics(broker: SecureBroker) -> set[str]:
    consumer = _connection(broker.env("sasl_ssl_scram512")).consumer()
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("security-sample") / "articles.jsonl"
    rows = read_jsonl(SAMPLE)[:ROWS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_creates_topics_produces_and_reads_back(
    secure_broker: SecureBroker, sample_file: Path, mode: str
) -> None:
    topic = f"articles-{mode}-{uuid.uuid4().hex[:6]}"
    env = {**secure_broker.env(mode), "STORYWATCH_TOPIC_ARTICLES": topic}
    done, _ = _cli(env, "kafka", "topics")
    assert done.returncode == 0, done.stderr
    assert f"{topic}: 1 partition(s), created" in done.stdout
    done, _ = _cli(env, "produce", str(sample_file))
    assert done.returncode == 0, done.stderr
    consumer = _connection(env).consumer(
        topic, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    ids = []
    try:
        for message in consumer:  # stops after 10 s without a record
            ids.append(json.loads(message.value)["id"])
            if len(ids) == ROWS:
                break
    finally:
        consumer.close()
    assert ids == [str(r["id"]) for r in read_jsonl(sample_file)]
    assert secure_broker.password not in done.stdout + done.stderr


def _refused(broker: SecureBroker, sample_file: Path, env: dict[str, str], *named: str) -> str:
    """`storywatch produce` with ``env``: it fails in time with one line naming ``named``,
    creates no topic and writes nothing, and shows no secret."""
    topic = f"articles-refused-{uuid.uuid4().hex[:6]}"
    done, took = _cli({**env, "STORYWATCH_TOPIC_ARTICLES": topic}, "produce", str(sample_file))
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert took < FAIL_WITHIN_S
    errors = [line for line in output.splitlines() if line.startswith("storywatch: error:")]
    assert len(errors) == 1, output
    assert output.strip() == errors[0], output  # that one line and nothing else
    for name in named:
        assert name in errors[0], errors[0]
    assert broker.password not in output
    assert topic not in _topics(broker)
    return errors[0]


def test_a_wrong_scram_password_names_the_mechanism(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    env = {**secure_broker.env("sasl_ssl_scram512"), "STORYWATCH_KAFKA_SASL_PASSWORD": "wrong-1"}
    line = _refused(
        secure_broker, sample_file, env, "SCRAM-SHA-512", "STORYWATCH_KAFKA_SASL_PASSWORD"
    )
    assert "wrong-1" not in line


def test_a_wrong_plain_password_names_the_mechanism(
    secure_broker: SecureBroker, sample_file: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("wrong-2\n", encoding="utf-8")
    env = secure_broker.env("sasl_plaintext_plain")
    del env["STORYWATCH_KAFKA_SASL_PASSWORD"]
    env["STORYWATCH_KAFKA_SASL_PASSWORD_FILE"] = str(secret)
    line = _refused(secure_broker, sample_file, env, "PLAIN", "STORYWATCH_KAFKA_SASL_PASSWORD")
    assert "wrong-2" not in line


def test_an_unknown_ca_names_the_cafile(
    secure_broker: SecureBroker, sample_file: Path, tmp_path: Path
) -> None:
    env = {**secure_broker.env("ssl"), "STORYWATCH_KAFKA_SSL_CAFILE": str(other_ca(tmp_path))}
    _refused(secure_broker, sample_file, env, "STORYWATCH_KAFKA_SSL_CAFILE")
    env = secure_broker.env("sasl_ssl_scram256")
    del env["STORYWATCH_KAFKA_SSL_CAFILE"]  # the system trust store does not know it either
    _refused(secure_broker, sample_file, env, "STORYWATCH_KAFKA_SSL_CAFILE", "system trust")


def test_an_expired_certificate_names_the_cafile(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    env = {
        **secure_broker.env("ssl"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("EXPIRED"),
    }
    line = _refused(secure_broker, sample_file, env, "STORYWATCH_KAFKA_SSL_CAFILE")
    assert "expired" in line


def test_a_hostname_mismatch_names_the_hostname_check(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    wrong = {
        **secure_broker.env("ssl"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("WRONGHOST"),
    }
    _refused(secure_broker, sample_file, wrong, "STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME")
    # The same listener with the check off (the CA still checked): the setting is honoured.
    done, _ = _cli({**wrong, "STORYWATCH_KAFKA_SSL_CHECK_HOSTNAME": "false"}, "kafka", "topics")
    assert done.returncode == 0, done.stderr


def test_a_plaintext_client_on_a_tls_port_and_the_reverse(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    plaintext_on_tls = {"STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("SSL")}
    line = _refused(
        secure_broker, sample_file, plaintext_on_tls, "STORYWATCH_KAFKA_SECURITY_PROTOCOL"
    )
    assert "speaks TLS" in line
    tls_on_plaintext = {
        **secure_broker.env("sasl_ssl_scram512"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("SASL_PLAINTEXT"),
    }
    line = _refused(
        secure_broker, sample_file, tls_on_plaintext, "STORYWATCH_KAFKA_SECURITY_PROTOCOL"
    )
    assert "does not speak TLS" in line


def test_a_missing_client_certificate_or_login_is_named(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    no_cert = {
        **secure_broker.env("ssl"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("MTLS"),
    }
    _refused(secure_broker, sample_file, no_cert, "STORYWATCH_KAFKA_SSL_CERTFILE")
    no_login = {"STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("SASL_PLAINTEXT")}
    _refused(secure_broker, sample_file, no_login, "STORYWATCH_KAFKA_SASL_USERNAME")
    login_on_tls_only = {
        **secure_broker.env("sasl_ssl_scram512"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("SSL"),
    }
    _refused(secure_broker, sample_file, login_on_tls_only, "STORYWATCH_KAFKA_SECURITY_PROTOCOL")


def test_a_refused_login_stops_the_worker_at_start(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    """The worker exits non-zero with the one line (no crash loop, no Faust start)."""
    from streams.kafka.local import free_port

    env = {
        **secure_broker.env("sasl_ssl_scram512"),
        "STORYWATCH_KAFKA_SASL_PASSWORD": "wrong-3",
        "STORYWATCH_DATA_DIR": str(tmp_path / "state"),
        "STORYWATCH_WEB_PORT": str(free_port()),
    }
    done, took = _cli(env, "worker", timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert took < FAIL_WITHIN_S
    assert "STORYWATCH_KAFKA_SASL_PASSWORD" in output and "SCRAM-SHA-512" in output, output
    assert "wrong-3" not in output and secure_broker.password not in output


def test_kafka_start_security_prints_what_a_client_needs(tmp_path: Path) -> None:
    """`storywatch kafka start --security mtls`: the export line it prints is all a client
    needs; `kafka stop` stops it."""
    from streams.kafka.local import free_port

    data = tmp_path / "broker"
    base: dict[str, Any] = {"STORYWATCH_KAFKA_PORT": str(free_port())}
    done, _ = _cli(base, "kafka", "start", "--security", "mtls", "--data-dir", str(data))
    try:
        assert done.returncode == 0, done.stderr
        export = next(line for line in done.stdout.splitlines() if line.startswith("export "))
        env = dict(item.split("=", 1) for item in export.removeprefix("export ").split())
        assert env["STORYWATCH_KAFKA_SECURITY_PROTOCOL"] == "SSL"
        assert Path(env["STORYWATCH_KAFKA_SSL_CERTFILE"]).is_file()
        assert (Path(env["STORYWATCH_KAFKA_SSL_KEYFILE"]).stat().st_mode & 0o077) == 0
        topics, _ = _cli(env, "kafka", "topics")
        assert topics.returncode == 0, topics.stderr
        without_cert = {k: v for k, v in env.items() if "CERTFILE" not in k and "KEYFILE" not in k}
        refused, _ = _cli(without_cert, "kafka", "topics")
        assert refused.returncode != 0
        assert "STORYWATCH_KAFKA_SSL_CERTFILE" in refused.stderr
    finally:
        _cli(base, "kafka", "stop", "--data-dir", str(data))


def test_a_worker_over_mutual_tls_processes_articles(
    secure_broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Faust's SSLCredentials with a client certificate (the SCRAM worker is in
    test_kafka_security_e2e.py): stories form, and the read model's reader serves them."""
    from tests.integration.worker_process import WorkerRun

    worker = WorkerRun(secure_broker.address("MTLS"), tmp_path_factory.mktemp("mtls-worker"))
    worker.settings.update(secure_broker.env("mtls"))
    connection = _connection(worker.env)
    rows = read_jsonl(SAMPLE)[:ROWS]
    try:
        worker.start()
        from streams.producer import produce_rows

        produce_rows(rows, connection, worker.topic("articles"))
        consumer = connection.consumer(
            worker.topic("stories"), group_id=None, auto_offset_reset="earliest"
        )
        decided: set[str] = set()
        deadline = time.monotonic() + 120
        try:
            while len(decided) < ROWS and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    decided.update(json.loads(m.value)["article_id"] for m in batch)
        finally:
            consumer.close()
        assert decided == {str(r["id"]) for r in rows}, worker.log()[-3000:]
        deadline = time.monotonic() + 30
        while json.loads(worker.http("/api/stories")[1])["active_stories"] == 0:
            assert time.monotonic() < deadline, "the read model never served a story"
            time.sleep(0.5)
    finally:
        worker.stop()


def test_a_mechanism_the_broker_does_not_offer_is_named_with_those_it_does(
    secure_broker: SecureBroker, sample_file: Path
) -> None:
    env = {
        **secure_broker.env("sasl_ssl_plain"),
        "STORYWATCH_KAFKA_BOOTSTRAP": secure_broker.address("SCRAMONLY"),
    }
    line = _refused(secure_broker, sample_file, env, "STORYWATCH_KAFKA_SASL_MECHANISM=PLAIN")
    assert "it offers SCRAM-SHA-512" in line


def test_a_client_certificate_from_another_ca_is_refused_naming_it(
    secure_broker: SecureBroker, sample_file: Path, tmp_path: Path
) -> None:
    from streams.kafka.certs import CertificateAuthority

    stranger = CertificateAuthority.create(tmp_path / "stranger", "Not the broker's CA")
    stranger.issue(
        tmp_path / "key.pem", tmp_path / "cert.pem", common_name="intruder", server=False
    )
    env = {
        **secure_broker.env("mtls"),
        "STORYWATCH_KAFKA_SSL_CERTFILE": str(tmp_path / "cert.pem"),
        "STORYWATCH_KAFKA_SSL_KEYFILE": str(tmp_path / "key.pem"),
    }
    _refused(secure_broker, sample_file, env, "STORYWATCH_KAFKA_SSL_CERTFILE")
