"""Every command end to end over SASL_SSL with SCRAM-SHA-512 and a private CA (the broker's
SASL_SSL listener): the worker (stories form), produce, watch, history, replay, kafka topics,
subscriptions (the compacted store, through the API), the dashboard's read model
(/api/stories), the alert history (/api/alerts), consumer lag (/metrics), and rebuild. No
password in any output or log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from streams.engine.offline import read_jsonl
from streams.kafka.connection import KafkaConnection
from tests.conftest import SAMPLE
from tests.integration.secure_broker import SecureBroker
from tests.integration.worker_process import WorkerRun

pytestmark = [pytest.mark.kafka]

MODE = "sasl_ssl_scram512"
# Why 40: enough headlines for several stories; the point is the connection, not the load.
ARTICLES = 40
TOKEN = "ops-token-0123456789"


def _connection(worker: WorkerRun) -> KafkaConnection:
    fields = {
        k.removeprefix("STORYWATCH_").lower(): v
        for k, v in worker.env.items()
        if k.startswith("STORYWATCH_KAFKA_")
    }
    return KafkaConnection.from_settings(Settings(**fields).kafka)


def _cli(worker: WorkerRun, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outputs.append(done.stdout + done.stderr)
    return done


outputs: list[str] = []  # every command's output, checked for the password at the end


def _read(worker: WorkerRun, topic: str, expect: int, timeout_s: float = 180) -> list[Any]:
    consumer = _connection(worker).consumer(
        topic, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=1000
    )
    values: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expect and time.monotonic() < deadline:
            values += [json.loads(m.value) for m in consumer if m.value is not None]
    finally:
        consumer.close()
    return values


def _api(worker: WorkerRun, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{worker.url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def worker(
    secure_broker: SecureBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerRun]:
    run = WorkerRun(secure_broker.address("SASL_SSL"), tmp_path_factory.mktemp("secure-worker"))
    run.settings.update({**secure_broker.env(MODE), "STORYWATCH_API_TOKENS": f"ops:{TOKEN}"})
    run.start()
    yield run
    run.stop()


@pytest.fixture(scope="module")
def stories(worker: WorkerRun, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    rows = read_jsonl(SAMPLE)[:ARTICLES]
    file = tmp_path_factory.mktemp("secure-input") / "articles.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _cli(worker, "produce", str(file))
    assert done.returncode == 0, done.stderr
    events = _read(worker, worker.topic("stories"), ARTICLES)
    assert {e["article_id"] for e in events} == {str(r["id"]) for r in rows}, worker.log()[-3000:]
    return events


def test_stories_form_and_watch_prints_them(worker: WorkerRun, stories: list[dict]) -> None:
    assert len({e["story_id"] for e in stories}) < ARTICLES  # some articles joined a story
    watch = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "watch", "--topic", worker.topic("stories")],
        env=worker.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert watch.stdout is not None
        deadline = time.monotonic() + 60
        while len(lines) < ARTICLES and time.monotonic() < deadline:
            line = watch.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        watch.terminate()
        watch.wait(timeout=30)
    outputs.append("".join(lines))
    assert len(lines) == ARTICLES, "".join(lines)
    assert sum(" NEW " in line for line in lines) == len({e["story_id"] for e in stories})


def test_history_replay_and_kafka_topics(
    worker: WorkerRun, stories: list[dict], tmp_path: Path
) -> None:
    history = _cli(worker, "history", "stories", "--since", "1d", "--json")
    assert history.returncode == 0, history.stderr
    assert {json.loads(x)["article_id"] for x in history.stdout.splitlines()} == {
        e["article_id"] for e in stories
    }
    replay = _cli(worker, "replay", "--from", "1d", "--out", str(tmp_path / "replay"))
    assert replay.returncode == 0, replay.stderr
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert summary["articles_read"] == ARTICLES
    topics = _cli(worker, "kafka", "topics")
    assert topics.returncode == 0, topics.stderr
    assert f"{worker.topic('stories')}: 1 partition(s), exists" in topics.stdout


def test_subscriptions_read_model_and_consumer_lag(worker: WorkerRun, stories: list[dict]) -> None:
    status, created = _api(worker, "POST", "/api/subscriptions", {"name": "over scram"})
    assert status == 201
    # The compacted store: written by the app's producer, read back by the store's reader.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, listed = _api(worker, "GET", "/api/subscriptions")
        if any(s["id"] == created["id"] for s in listed["subscriptions"]):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"subscription {created['id']} not read back: {listed}")
    stored = _read(worker, worker.topic("subscriptions"), 1, timeout_s=30)
    assert created["id"] in {s.get("id") for s in stored}
    _, answer = _api(worker, "GET", "/api/stories?limit=100")
    assert answer["active_stories"] == len({e["story_id"] for e in stories})
    # The alert history: its own reader of `alerts`, over the same connection (it answers
    # only after reading the topic; it lists an owner's subscription alerts, and this
    # subscription was made after the stories, so none).
    assert _read(worker, worker.topic("alerts"), 1, timeout_s=30)  # built-in alerts exist
    status, history = _api(worker, "GET", "/api/alerts?limit=100")
    assert status == 200 and history["alerts"] == []
    deadline = time.monotonic() + 60
    lag = None
    while time.monotonic() < deadline:
        try:
            lag = worker.metric(
                "storywatch_consumer_lag", topic=worker.topic("articles"), partition="0"
            )
        except AssertionError:
            lag = None
        if lag == 0:
            break
        time.sleep(1)
    assert lag == 0, "the lag gauge of the articles topic never read 0"


def test_rebuild_and_no_password_anywhere(
    worker: WorkerRun, stories: list[dict], secure_broker: SecureBroker
) -> None:
    worker.stop()  # rebuild switches the state once the workers are stopped
    rebuild = _cli(worker, "rebuild", "--from", "1d", "--wait", "60")
    assert rebuild.returncode == 0, rebuild.stderr
    assert "switched:" in rebuild.stdout
    worker.start()  # and a worker starts on the rebuilt state
    assert secure_broker.password not in worker.log()
    for output in outputs:
        assert secure_broker.password not in output
