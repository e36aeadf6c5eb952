"""Live alerts end to end: the real broker, a real worker process, real HTTP on 127.0.0.1.

Two owners' SSE clients connect before the sample is produced and get their own alerts as
they fire; ``GET /api/alerts`` windows and cursors; the alert CloudEvent on Kafka checked
against the stories topic; /metrics without Prometheus; and a webhook host whose DNS answer turns
private (through /etc/hosts) between the subscription's creation and the alerts, refused at
send time by the worker while the other deliveries arrive.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from streams.engine.embedding import Embedder
from streams.engine.offline import read_jsonl
from streams.engine.vectors import decode_vector
from streams.producer import produce_rows
from streams.time_ranges import iso_time
from tests.conftest import SAMPLE
from tests.integration import test_subscriptions as subscription_tests
from tests.integration.test_subscriptions import ALICE, BOB, SBARRO, Receiver, _until, api
from tests.integration.worker_process import WorkerRun, read_topic, records_to_end

pytestmark = pytest.mark.kafka

# The subscription tests' fixtures, instantiated again for this module: a worker with Alice's
# and Bob's tokens that may deliver to 127.0.0.1, and a receiver that verifies signatures.
worker = subscription_tests.worker
receiver = subscription_tests.receiver

HOSTS = Path("/etc/hosts")
# A name only this test gives an address (the .test TLD never resolves in public DNS).
REBIND_HOST = "rebind-hook.storywatch.test"
PRIVATE_ADDRESS = "10.11.12.13"
DOCUMENTATION_ADDRESS = "203.0.113.7"
SEMANTIC_QUERY = "Sbarro pizza restaurant chain files for bankruptcy"
TRANSIT = "transit"
# Why 3: the resume test restarts after the third of Alice's events, and needs events after it.
RESUME_AFTER = 3
# Why 5 s: aiohttp_sse pings every 15 s, so a quiet stream reads nothing for this long.
QUIET_S = 5.0


@dataclass
class SseClient:
    """An ``/api/alerts/stream`` client in a thread: every event with the monotonic time it
    arrived. ``status`` is the HTTP status (401 etc. when refused)."""

    worker: WorkerRun
    token: str | None
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, dict[str, Any], float]] = field(default_factory=list)
    status: int | None = None
    error: dict[str, Any] | None = None
    content_type: str = ""
    answered: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SseClient:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.answered.wait(30), "the alert stream did not answer in 30 s"
        return self

    def _run(self) -> None:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.worker.url}/api/alerts/stream{self.query}", headers=headers
        )
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:
            self.status, self.error = exc.code, json.loads(exc.read())
            self.answered.set()
            return
        with response:
            self.status = response.status
            self.content_type = response.headers["Content-Type"]
            self.answered.set()
            event_id = None
            for raw in response:
                if self.stop.is_set():
                    return
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    assert event_id is not None, "an event without an id"
                    self.events.append((event_id, json.loads(line[6:]), time.monotonic()))

    def ids(self) -> list[int]:
        return [event_id for event_id, _, _ in self.events]


def _alert_records(worker: WorkerRun, owner: str) -> list[ConsumerRecord]:
    records = records_to_end(worker.bootstrap, worker.topic("alerts"))
    return [r for r in records if (r.value.get("data") or {}).get("owner") == owner]


def _subscription(worker: WorkerRun, token: str, name: str, filt: Any, url: str) -> Any:
    status, created = api(
        worker,
        "POST",
        "/api/subscriptions",
        {"name": name, "filter": filt, "delivery": {"webhook": {"url": url}}},
        token=token,
    )
    assert status == 201, created
    return created


@pytest.fixture(scope="module")
def hosts_file() -> Iterator[Callable[[str], None]]:
    """Point REBIND_HOST at an address through /etc/hosts; the file is restored afterwards,
    whatever happens. Needs root (CI runs the tests as root): fails, never skips, without."""
    if os.geteuid() != 0:
        pytest.fail(
            "this test maps a host name in /etc/hosts and needs root: run it as root "
            "(as CI does), or deselect tests/integration/test_alert_stream.py"
        )
    original = HOSTS.read_bytes()

    def point(address: str) -> None:
        # Written in place (not renamed over): /etc/hosts is often a bind mount.
        HOSTS.write_bytes(original.rstrip(b"\n") + f"\n{address} {REBIND_HOST}\n".encode())

    try:
        yield point
    finally:
        HOSTS.write_bytes(original)


@pytest.fixture(scope="module")
def streamed(
    worker: WorkerRun, receiver: Receiver, hosts_file: Callable[[str], None]
) -> Iterator[dict[str, Any]]:
    """Alice: a keyword, a semantic and a REBIND_HOST subscription; Bob: a transit one to a
    receiver that answers 503 twice per delivery. REBIND_HOST resolves to 127.0.0.1 at
    creation (a test alert arrives through it) and to PRIVATE_ADDRESS before the sample is
    produced. Both owners' SSE clients are connected before the first article."""
    port = receiver.port
    hosts_file(DOCUMENTATION_ADDRESS)
    refused = api(
        worker,
        "POST",
        "/api/subscriptions",
        {"name": "x", "delivery": {"webhook": {"url": f"http://{REBIND_HOST}:{port}/ok/x"}}},
    )
    hosts_file("127.0.0.1")
    subs = {
        "keyword": _subscription(
            worker,
            ALICE,
            "keyword",
            {"keywords": {"any": ["Sbarro"]}, "triggers": ["new_story", "growth"]},
            receiver.url("/ok/keyword"),
        ),
        "semantic": _subscription(
            worker, ALICE, "semantic", {"query": SEMANTIC_QUERY}, receiver.url("/ok/semantic")
        ),
        "rebind": _subscription(
            worker,
            ALICE,
            "rebind",
            {"keywords": {"any": ["Sbarro"]}},
            f"http://{REBIND_HOST}:{port}/ok/rebind",
        ),
        "transit": _subscription(
            worker, BOB, "transit", {"keywords": {"any": [TRANSIT]}}, receiver.url("/flaky/bob")
        ),
    }
    status, _ = api(worker, "POST", f"/api/subscriptions/{subs['rebind']['id']}/test")
    assert status in (200, 202)
    _until(lambda: receiver.delivered("/ok/rebind"), 30, "the test alert through REBIND_HOST")
    hosts_file(PRIVATE_ADDRESS)
    retries_before = worker.metric("storywatch_webhook_retries_total")
    alice = SseClient(worker, ALICE).start()
    bob = SseClient(worker, BOB).start()
    time.sleep(2)  # the stream's consumer takes the end offset after the response starts
    rows = read_jsonl(SAMPLE)
    produce_rows(rows, worker.bootstrap, worker.topic("articles"))
    stories = read_topic(worker.bootstrap, worker.topic("stories"), expect=len(rows), timeout_s=240)
    processed = time.monotonic()
    assert len(stories) == len(rows)
    yield {
        "subs": subs,
        "rows": rows,
        "stories": stories,
        "processed": processed,
        "alice": alice,
        "bob": bob,
        "refused": refused,
        "retries_before": retries_before,
    }
    alice.stop.set()
    bob.stop.set()


def _settled(worker: WorkerRun, clients: dict[str, SseClient]) -> dict[str, list[ConsumerRecord]]:
    """Each owner's alert records once its SSE client has as many events as the topic."""
    found: dict[str, list[ConsumerRecord]] = {}

    def caught_up() -> bool:
        for owner, client in clients.items():
            found[owner] = _alert_records(worker, owner)
            if len(client.events) < len(found[owner]):
                return False
        return True

    _until(caught_up, 60, "the SSE clients to catch up with the alerts topic")
    return found


def test_sse_clients_get_their_owners_alerts_as_they_fire(worker, streamed) -> None:
    alice, bob = streamed["alice"], streamed["bob"]
    assert alice.status == bob.status == 200
    assert alice.content_type.startswith("text/event-stream")
    records = _settled(worker, {"alice": alice, "bob": bob})
    time.sleep(QUIET_S)  # nothing more may arrive than the topic holds
    for owner, client in [("alice", alice), ("bob", bob)]:
        assert records[owner], f"{owner} got no alerts: the sample should match"
        assert client.ids() == [r.offset for r in records[owner]], owner
        assert [a for _, a, _ in client.events] == [r.value for r in records[owner]], owner
        # Live: the first alert arrived before the last article was clustered.
        assert client.events[0][2] < streamed["processed"], owner
    assert {a["data"]["subscription_id"] for _, a, _ in bob.events} == {
        streamed["subs"]["transit"]["id"]
    }
    alice_stories = {a["subject"] for _, a, _ in alice.events}
    bob_stories = {a["subject"] for _, a, _ in bob.events}
    assert alice_stories and bob_stories and not alice_stories & bob_stories


def test_sse_refuses_a_missing_or_wrong_token(worker, streamed) -> None:
    for client in [
        SseClient(worker, None),
        SseClient(worker, "not-a-token-at-all"),
        SseClient(worker, None, query="?access_token=not-a-token-at-all"),
    ]:
        client.start()
        assert client.status == 401, (client.token, client.query)
        assert client.error is not None and client.error["field"] == "authorization"


def test_sse_resume_after_the_kth_event_gets_exactly_the_rest(worker, streamed) -> None:
    alice = streamed["alice"]
    records = _settled(worker, {"alice": alice})["alice"]
    assert len(records) > RESUME_AFTER, "too few alerts to resume in the middle"
    kth = alice.ids()[RESUME_AFTER - 1]
    resumed = SseClient(worker, ALICE, headers={"Last-Event-ID": str(kth)}).start()
    want = [r.offset for r in records if r.offset > kth]
    _until(lambda: len(resumed.events) >= len(want), 30, "the resumed events")
    time.sleep(QUIET_S)
    resumed.stop.set()
    assert resumed.ids() == want == alice.ids()[RESUME_AFTER:]


def _alert_pages(worker: WorkerRun, query: str) -> list[list[dict[str, Any]]]:
    """Alice's ``/api/alerts?{query}``, page after page, following next_cursor to its end."""
    pages: list[list[dict[str, Any]]] = []
    cursor = ""
    for _ in range(1000):
        status, body = api(worker, "GET", f"/api/alerts?{query}{cursor}")
        assert status == 200, body
        pages.append(body["alerts"])
        if body["next_cursor"] is None:
            return pages
        cursor = f"&cursor={body['next_cursor']}"
    raise AssertionError("the cursor never ended")


def test_alert_history_window_and_limit(worker, streamed) -> None:
    _settled(worker, {"alice": streamed["alice"]})
    records = _alert_records(worker, "alice")
    times = sorted({r.timestamp for r in records})
    assert len(times) >= 3, "the alerts should span several instants"
    # A window that starts at the second instant and ends (exclusive) at the last one.
    since, until = f"{times[1] / 1000:.3f}", f"{times[-1] / 1000:.3f}"
    since_ms, until_ms = int(float(since) * 1000), int(float(until) * 1000)  # as the API reads
    inside = [r for r in records if since_ms <= r.timestamp < until_ms]
    assert 0 < len(inside) < len(records)
    status, body = api(worker, "GET", f"/api/alerts?since={since}&until={until}&limit=1000")
    assert status == 200, body
    assert body["next_cursor"] is None  # the whole window in one page
    whole = body["alerts"]
    assert [(a.pop("offset"), a) for a in whole] == [(r.offset, r.value) for r in inside]
    status, body = api(worker, "GET", f"/api/alerts?since={since}&until={until}&limit=2")
    assert status == 200 and [a["offset"] for a in body["alerts"]] == [r.offset for r in inside[:2]]
    # Paging on with next_cursor, two at a time, serves the same alerts in the same order.
    pages = _alert_pages(worker, f"since={since}&until={until}&limit=2")
    assert [(a.pop("offset"), a) for page in pages for a in page] == [
        (r.offset, r.value) for r in inside
    ]
    # Full pages, and no empty one at the end: next_cursor is null once nothing follows.
    full, left = divmod(len(inside), 2)
    assert [len(page) for page in pages] == [2] * full + ([left] if left else [])
    everything = _alert_pages(worker, "limit=1000")
    assert len(everything) == 1 and len(everything[0]) == len(records)
    in_twos = _alert_pages(worker, "limit=2")
    assert len(in_twos) > 1 and [a for page in in_twos for a in page] == everything[0]
    status, body = api(worker, "GET", f"/api/alerts?since={since}&until={until}", token=BOB)
    assert status == 200 and body["alerts"] == []  # Bob's transit stories are not here
    assert body["next_cursor"] is None
    status, body = api(worker, "GET", "/api/alerts?cursor=not-a-cursor")
    assert status == 400 and body["field"] == "cursor", body
    status, body = api(worker, "GET", f"/api/alerts?since={until}&until={since}")
    assert status == 400 and body["field"] == "until"
    assert api(worker, "GET", "/api/alerts?limit=0")[1]["field"] == "limit"


def _story_events(streamed: dict[str, Any], story_id: str) -> list[dict[str, Any]]:
    return [e for e in streamed["stories"] if e["story_id"] == story_id]


def _triggering(streamed: dict[str, Any], alert: dict[str, Any]) -> list[int]:
    """Positions (in the story's events) of the events that can have fired ``alert``: the
    alert's time is its story event's event_time and its summary that event's story fields."""
    story = alert["data"]["story"]
    return [
        i
        for i, e in enumerate(_story_events(streamed, alert["subject"]))
        if iso_time(e["event_time"]) == alert["time"]
        and e["story_size"] == story["size"]
        and e["headline"] == story["headline"]
        and e["source_count"] == story["source_count"]
        and (e.get("keywords") or []) == story["keywords"]
    ]


def test_alert_cloud_event_on_kafka_agrees_with_the_story(
    worker, streamed, embedder: Embedder
) -> None:
    _settled(worker, {"alice": streamed["alice"]})
    subs = streamed["subs"]
    records = _alert_records(worker, "alice")
    checked = Counter[str]()
    for record in records:
        alert = record.value
        data = alert["data"]
        assert record.key.decode() == data["subscription_id"]
        assert alert["specversion"] == "1.0"
        assert alert["type"] == f"io.storywatch.subscription.{data['trigger']}"
        assert alert["source"] == f"/storywatch/{worker.env['STORYWATCH_APP_ID']}/subscriptions"
        assert alert["datacontenttype"] == "application/json" and alert["time"]
        assert alert["id"].startswith(f"{data['subscription_id']}:{alert['subject']}:")
        story = data["story"]
        assert story["story_id"] == alert["subject"]
        events = _story_events(streamed, alert["subject"])
        found = _triggering(streamed, alert)
        assert found, f"no story event agrees with alert {alert['id']}: {story}"
        upto = events[: found[0] + 1]
        # Same-content copies join a story without growing it.
        grew = {e["article_id"] for e in upto if e["decision"] in ("new", "joined")}
        assert story["size"] == len(grew)
        assert story["sources"] and set(story["sources"]) <= {e["source"] for e in upto}
        assert set(story["sample_urls"]) <= {e["url"] for e in upto}
        assert story["sample_urls"], "the sample articles have URLs"
        assert story["headline"] and story["keywords"]
        why = data["why"]
        name = next(n for n, s in subs.items() if s["id"] == data["subscription_id"])
        if name in ("keyword", "rebind"):
            assert why["keywords"] == ["Sbarro"] and why["semantic_score"] is None
            assert any(SBARRO.search(e["title"] + " " + (e.get("text") or "")) for e in upto)
        else:
            assert name == "semantic" and why["keywords"] == []
            query = embedder.encode([SEMANTIC_QUERY])[0]
            scores = [float(np.dot(query, decode_vector(events[i]["centroid"]))) for i in found]
            assert any(abs(s - why["semantic_score"]) < 1e-3 for s in scores), (scores, why)
            assert why["semantic_score"] >= subs["semantic"]["filter"]["query_threshold"]
        checked[name] += 1
    assert set(checked) == {"keyword", "semantic", "rebind"}, checked
    assert "growth" in {r.value["data"]["trigger"] for r in records}


def _quiet_outbox(worker: WorkerRun) -> None:
    """Every delivery final: the outbox is empty, twice a second apart."""

    def empty() -> bool:
        return worker.metric("storywatch_webhook_outbox_depth") == 0

    _until(lambda: empty() and time.sleep(1) is None and empty(), 120, "an empty outbox")


def test_metrics_count_subscriptions_retries_and_outcomes(worker, streamed, receiver) -> None:
    _settled(worker, {"alice": streamed["alice"], "bob": streamed["bob"]})
    bob_alerts = _alert_records(worker, "bob")
    _until(
        lambda: len({r["id"] for r in receiver.delivered("/flaky/bob")}) >= len(bob_alerts),
        120,
        "Bob's deliveries",
    )
    _quiet_outbox(worker)
    enabled = [
        s
        for token in (ALICE, BOB)
        for s in api(worker, "GET", "/api/subscriptions", token=token)[1]["subscriptions"]
        if s["enabled"]
    ]
    assert len(enabled) == 4
    assert worker.metric("storywatch_subscriptions", state="enabled") == len(enabled)
    assert worker.metric("storywatch_subscriptions", state="disabled") == 0

    refusals = [r for r in receiver.requests if r["status"] == 503]
    accepted = {r["id"] for r in receiver.requests if r["status"] == 200}
    rebind = [
        r
        for r in _alert_records(worker, "alice")
        if r.value["data"]["subscription_id"] == streamed["subs"]["rebind"]["id"]
    ]
    assert len(refusals) == 2 * len(bob_alerts)  # the receiver's two 503s per delivery
    assert streamed["retries_before"] == 0
    assert worker.metric("storywatch_webhook_retries_total") == len(refusals)
    counted = {
        outcome: worker.metric("storywatch_webhook_deliveries_total", outcome=outcome)
        for outcome in ("retry", "delivered", "failed", "parked")
    }
    assert counted == {
        "retry": len(refusals),
        "delivered": len(accepted),
        "failed": len(rebind),
        "parked": len(rebind),
    }


def test_subscription_gauge_follows_the_api_without_story_traffic(
    worker, streamed, receiver
) -> None:
    """Creating, disabling and deleting subscriptions shows on /metrics at once, not only
    when the next story event arrives."""
    _settled(worker, {"alice": streamed["alice"]})
    enabled = worker.metric("storywatch_subscriptions", state="enabled")
    extra = _subscription(worker, BOB, "extra", {}, receiver.url("/ok/extra"))
    _until(
        lambda: worker.metric("storywatch_subscriptions", state="enabled") == enabled + 1,
        10,
        "the gauge to count the new subscription",
    )
    body = {"name": "extra", "filter": {}, "enabled": False}
    status, changed = api(worker, "PUT", f"/api/subscriptions/{extra['id']}", body, token=BOB)
    assert status == 200, changed
    _until(
        lambda: (
            worker.metric("storywatch_subscriptions", state="disabled") == 1
            and worker.metric("storywatch_subscriptions", state="enabled") == enabled
        ),
        10,
        "the gauge to count the disabled subscription",
    )
    assert api(worker, "DELETE", f"/api/subscriptions/{extra['id']}", token=BOB)[0] == 204
    _until(
        lambda: worker.metric("storywatch_subscriptions", state="disabled") == 0,
        10,
        "the gauge to drop the deleted subscription",
    )


def test_dns_turning_private_is_refused_at_send_time(worker, streamed, receiver) -> None:
    """REBIND_HOST resolved (through /etc/hosts) to a documentation address: refused at
    creation; to 127.0.0.1 (allowed): created, and a test alert arrived through it; to a
    private address before the alerts: every alert is refused without a connection and
    parked, while the keyword subscription's deliveries (same stories) arrive."""
    status, body = streamed["refused"]
    assert status == 400 and body["field"] == "delivery.webhook.url", body
    # The class of address, not the address itself (issue 19: naming it maps the network).
    assert f"{REBIND_HOST} resolves to a documentation address" in body["error"]
    assert DOCUMENTATION_ADDRESS not in body["error"]
    _settled(worker, {"alice": streamed["alice"]})
    sub_id = streamed["subs"]["rebind"]["id"]
    alerts = [
        r.value
        for r in _alert_records(worker, "alice")
        if r.value["data"]["subscription_id"] == sub_id
    ]
    assert alerts, "the rebind subscription should have fired"
    parked = read_topic(
        worker.bootstrap, worker.topic("alerts_dlq"), expect=len(alerts) + 1, timeout_s=30
    )
    assert sorted(p["alert_id"] for p in parked) == sorted(a["id"] for a in alerts)
    for entry in parked:
        assert entry["subscription_id"] == sub_id and entry["status"] is None
        assert entry["reason"] == "delivery_failed"
        assert entry["error"].startswith(f"refused: {REBIND_HOST} resolves to a private address"), (
            entry["error"]
        )
        assert PRIVATE_ADDRESS not in entry["error"]
    # The only request that ever reached /ok/rebind is the test alert sent before the change.
    rebind = [r for r in receiver.requests if r["path"] == "/ok/rebind"]
    assert [json.loads(r["body"])["type"] for r in rebind] == ["io.storywatch.subscription.test"]
    log = api(worker, "GET", f"/api/subscriptions/{sub_id}/deliveries")[1]["deliveries"]
    assert {d["outcome"] for d in log if d["trigger"] != "test"} == {"parked"}
    # The keyword subscription fires for the same stories; its deliveries all arrive.
    keyword = streamed["subs"]["keyword"]["id"]
    want = {
        r.value["id"]
        for r in _alert_records(worker, "alice")
        if r.value["data"]["subscription_id"] == keyword
    }
    assert {a["subject"] for a in alerts} <= {i.split(":")[1] for i in want}
    _until(
        lambda: {json.loads(r["body"])["id"] for r in receiver.delivered("/ok/keyword")} >= want,
        60,
        "the keyword subscription's deliveries",
    )
