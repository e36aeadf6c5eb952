"""Subscription alerts at the edges of their guarantees, end to end: the real broker, a real
worker process, real HTTP on 127.0.0.1.

An alert re-sent after a crash (the same CloudEvent id twice on ``alerts``) is served once
by ``GET /api/alerts`` and once by the SSE stream, also across a reconnect with
Last-Event-ID.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.integration.test_subscriptions import ALICE, api
from tests.integration.worker_process import WorkerRun

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    run = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("subscription-scale"))
    run.settings["STORYWATCH_API_TOKENS"] = f"alice:{ALICE}"
    run.start()
    yield run
    run.stop()


def _alert(alert_id: str, owner: str = "alice") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": alert_id,
        "type": "io.storywatch.subscription.new_story",
        "source": "/storywatch/test/subscriptions",
        "subject": "st-1",
        "time": "2026-12-01T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"owner": owner, "subscription_id": "sub_1", "trigger": "new_story"},
    }


def _publish(worker: WorkerRun, *alerts: dict[str, Any]) -> None:
    producer = KafkaProducer(bootstrap_servers=worker.bootstrap, acks="all")
    try:
        for alert in alerts:
            producer.send(worker.topic("alerts"), json.dumps(alert).encode(), key=b"sub_1")
        producer.flush(timeout=30)
    finally:
        producer.close()


def _stream(worker: WorkerRun, last_event_id: int, until_id: str) -> list[tuple[str, str]]:
    """(SSE id, CloudEvent id) of the stream's alerts after ``last_event_id``, up to the
    alert ``until_id``."""
    request = urllib.request.Request(
        f"{worker.url}/api/alerts/stream?access_token={ALICE}",
        headers={"Last-Event-ID": str(last_event_id)},
    )
    events: list[tuple[str, str]] = []
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = ""
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                alert_id = json.loads(line[6:])["id"]
                events.append((event_id, alert_id))
                if alert_id == until_id:
                    break
    return events


def test_an_alert_re_sent_after_a_crash_is_served_once(worker: WorkerRun) -> None:
    # offsets 0-4: a1, a2, bob's b1, the re-sent copy of a1 and of a2, then a3
    _publish(worker, _alert("a1"), _alert("a2"), _alert("b1", owner="bob"))
    _publish(worker, _alert("a1"), _alert("a2"), _alert("a3"))

    status, body = api(worker, "GET", "/api/alerts?limit=10")
    assert status == 200
    assert [(a["offset"], a["id"]) for a in body["alerts"]] == [(0, "a1"), (1, "a2"), (5, "a3")]

    assert _stream(worker, -1, "a3") == [("0", "a1"), ("1", "a2"), ("5", "a3")]
    # A client that had a1 and a2 reconnects after a2: the copies are not sent again.
    assert _stream(worker, 1, "a3") == [("5", "a3")]
    # One that had only a1: a2 is new to it (its first copy), a1's copy is not.
    assert _stream(worker, 0, "a3") == [("1", "a2"), ("5", "a3")]
