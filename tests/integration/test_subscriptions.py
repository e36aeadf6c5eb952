"""Alert subscriptions end to end: the real broker, a real worker process, real HTTP on
127.0.0.1 (the API, and a webhook receiver that verifies every signature).

A keyword, a semantic and a source-filtered subscription each get exactly the stories they
should from the labelled sample; a receiver that fails first gets each alert once, after
retries; a receiver that hangs holds up nobody else; a worker killed with deliveries
pending loses none and doubles none; the API's errors; SSE with Last-Event-ID; the CLI.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from streams.contracts.outbox import webhook_id_of
from streams.engine.offline import read_jsonl
from streams.kafka.local import free_port
from streams.producer import produce_rows
from streams.subscriptions.webhooks import render_body
from tests.conftest import SAMPLE
from tests.integration.worker_process import WorkerRun, read_to_end, read_topic

pytestmark = pytest.mark.kafka

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789"
SBARRO = re.compile(r"\bsbarro\b", re.IGNORECASE)
# Why 2: each new delivery to the flaky receiver fails twice (503) before it is accepted.
FLAKY_FAILURES = 2
# Why 8: enough Sbarro articles to make a story with several sources, few enough to embed
# and match in seconds on a busy machine.
LATE_ROWS = 8


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: /ok/* answers 200, /flaky/* answers 503 to the first
    FLAKY_FAILURES requests of each webhook-id, /hang/* sleeps past the sender's timeout,
    /gate/* answers 503 until ``open_gate`` is set, /hold/* accepts (200) but holds its
    answer until ``release_hold`` is set."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    open_gate: threading.Event = field(default_factory=threading.Event)
    # /hold/*: the request is accepted (recorded with status 200, as a receiver that has
    # processed it) and its answer held until ``release_hold`` is set; ``held`` is set then.
    release_hold: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                wid = headers.get("webhook-id", "")
                seen = sum(1 for r in receiver.requests if r["id"] == wid)
                status = 200
                if (self.path.startswith("/flaky/") and seen < FLAKY_FAILURES) or (
                    self.path.startswith("/gate/") and not receiver.open_gate.is_set()
                ):
                    status = 503
                elif self.path.startswith("/hang/"):
                    time.sleep(5)
                hold = self.path.startswith("/hold/") and not receiver.release_hold.is_set()
                receiver.requests.append(
                    {
                        "path": self.path,
                        "id": wid,
                        "headers": headers,
                        "body": body,
                        "status": status,
                        "at": time.monotonic(),
                        "held": hold,
                    }
                )
                if hold:
                    receiver.held.set()
                    receiver.release_hold.wait(300)
                try:
                    self.send_response(status)
                    if status == 503 and self.path.startswith("/gate/"):
                        # A floor under every retry (capped at the worker's 1 s maximum):
                        # 6 attempts then span at least 5 s, so a gated delivery is still
                        # pending, not parked, when the kill test kills the worker.
                        self.send_header("Retry-After", "60")
                    self.end_headers()
                except OSError:
                    pass  # the worker was killed while this answer was held

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(prefix) and r["status"] == 200]


def api(
    worker: WorkerRun,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = ALICE,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"{worker.url}{path}", data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None


def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture(scope="module")
def hanging() -> Iterator[Receiver]:
    """Another receiver (its own port), whose every request hangs past the timeout."""
    rec = Receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    run = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("subscriptions"))
    run.settings.update(
        {
            "STORYWATCH_API_TOKENS": f"alice:{ALICE},bob:{BOB}",
            "STORYWATCH_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            "STORYWATCH_WEBHOOK_TIMEOUT_S": "1",
            "STORYWATCH_WEBHOOK_RETRY_BASE_S": "0.2",
            "STORYWATCH_WEBHOOK_RETRY_MAX_S": "1",
            "STORYWATCH_WEBHOOK_MAX_ATTEMPTS": "6",
            "STORYWATCH_SESSION_TIMEOUT_S": "6",
        }
    )
    run.start()
    yield run
    run.stop()


@pytest.fixture(scope="module")
def streamed(worker: WorkerRun, receiver: Receiver, hanging: Receiver) -> dict[str, Any]:
    """Four subscriptions, then the labelled sample; every story event and delivery."""
    subs: dict[str, dict[str, Any]] = {}
    for name, body in {
        "keyword": {"filter": {"keywords": {"any": ["Sbarro"]}}, "path": "/ok/keyword"},
        "semantic": {
            "filter": {"query": "Sbarro pizza restaurant chain files for bankruptcy"},
            "path": "/ok/semantic",
        },
        "source": {"filter": {"sources": {"allow": ["reuters"]}}, "path": "/flaky/source"},
        "hang": {"filter": {}, "path": "/hang/everything"},
    }.items():
        status, created = api(
            worker,
            "POST",
            "/api/subscriptions",
            {
                "name": name,
                "filter": body["filter"],
                "delivery": {
                    "webhook": {
                        "url": (hanging if name == "hang" else receiver).url(str(body["path"]))
                    }
                },
            },
        )
        assert status == 201, created
        subs[name] = created
    rows = read_jsonl(SAMPLE)
    started = time.monotonic()
    produce_rows(rows, worker.bootstrap, worker.topic("articles"))
    stories = read_topic(worker.bootstrap, worker.topic("stories"), expect=len(rows), timeout_s=240)
    processed = time.monotonic()
    return {
        "subs": subs,
        "rows": rows,
        "stories": stories,
        "started": started,
        "processed": processed,
    }


def _stories_where(events: list[dict[str, Any]], keep: Any) -> set[str]:
    return {e["story_id"] for e in events if keep(e)}


def _alerted(receiver: Receiver, prefix: str) -> Counter[str]:
    """Deliveries accepted (2xx) per story, counted by distinct webhook-id."""
    stories: Counter[str] = Counter()
    for request in {r["id"]: r for r in receiver.delivered(prefix)}.values():
        stories[json.loads(request["body"])["data"]["story"]["story_id"]] += 1
    return stories


def test_keyword_subscription_gets_exactly_the_stories_that_name_it(streamed, receiver) -> None:
    expected = _stories_where(
        streamed["stories"], lambda e: SBARRO.search(e["title"] + " " + (e.get("text") or ""))
    )
    assert expected, "the sample should hold Sbarro stories"
    _until(lambda: set(_alerted(receiver, "/ok/keyword")) >= expected, 60, "keyword alerts")
    time.sleep(1)
    alerted = _alerted(receiver, "/ok/keyword")
    assert set(alerted) == expected
    assert set(alerted.values()) == {1}
    ids = [r["id"] for r in receiver.delivered("/ok/keyword")]
    assert len(ids) == len(set(ids)), "a webhook-id was delivered twice"


def test_every_delivery_is_signed_with_the_subscriptions_secret(
    streamed, receiver, hanging
) -> None:
    _until(lambda: receiver.delivered("/ok/"), 60, "deliveries")
    secrets = {name: sub["secret"] for name, sub in streamed["subs"].items()}
    for request in receiver.requests + hanging.requests:
        name = request["path"].split("/")[2]
        payload = Webhook(secrets[{"everything": "hang"}.get(name, name)]).verify(
            request["body"], request["headers"]
        )
        assert payload["specversion"] == "1.0"
        assert payload["type"].startswith("io.storywatch.subscription.")
        wrong = Webhook(secrets["keyword" if name != "keyword" else "semantic"])
        with pytest.raises(Exception, match="signature"):
            wrong.verify(request["body"], request["headers"])


def test_semantic_subscription_gets_the_story_it_describes(streamed, receiver) -> None:
    gold = {r["id"]: r["label"] for r in streamed["rows"]}
    members: dict[str, list[str]] = defaultdict(list)
    for event in streamed["stories"]:
        members[event["story_id"]].append(gold[event["article_id"]])
    sbarro_label = Counter(
        r["label"] for r in streamed["rows"] if SBARRO.search(r["title"])
    ).most_common(1)[0][0]
    biggest = max(members, key=lambda s: members[s].count(sbarro_label))
    _until(lambda: biggest in _alerted(receiver, "/ok/semantic"), 60, "the semantic alert")
    time.sleep(1)
    for story in _alerted(receiver, "/ok/semantic"):
        label = Counter(members[story]).most_common(1)[0][0]
        assert label == sbarro_label, f"story {story} is about something else"


def test_source_filter_and_retries_deliver_each_alert_once(streamed, receiver) -> None:
    """Reuters stories only; the receiver fails twice per alert, then gets it exactly once."""
    expected = _stories_where(streamed["stories"], lambda e: e["source"].lower() == "reuters")
    assert expected
    _until(lambda: set(_alerted(receiver, "/flaky/source")) >= expected, 90, "retried alerts")
    time.sleep(2)
    alerted = _alerted(receiver, "/flaky/source")
    assert set(alerted) == expected
    attempts = Counter(r["id"] for r in receiver.requests if r["path"].startswith("/flaky/"))
    assert set(attempts.values()) == {FLAKY_FAILURES + 1}
    ok = Counter(r["id"] for r in receiver.delivered("/flaky/"))
    assert set(ok.values()) == {1}


def test_a_hanging_receiver_holds_up_nobody_else(streamed, receiver, hanging) -> None:
    _until(lambda: receiver.delivered("/ok/keyword"), 60, "keyword alerts")
    tried = hanging.requests
    assert tried, "the match-everything subscription should have been tried"
    done = max(r["at"] for r in receiver.delivered("/ok/"))
    # Everything the healthy receivers get arrives while the hanging receiver's deliveries
    # are still timing out and being retried: it keeps being tried after the last of them.
    _until(lambda: any(r["at"] > done for r in hanging.requests), 120, "a later hanging try")
    assert len({r["id"] for r in tried}) > len({r["id"] for r in receiver.delivered("/ok/")})


def test_deliveries_that_exhaust_their_retries_are_parked(worker, streamed, hanging) -> None:
    """The hanging receiver never answers in time: after the last attempt the delivery goes
    to alerts-dlq with the reason and the last error, and its receipt says parked."""
    parked = read_topic(worker.bootstrap, worker.topic("alerts_dlq"), expect=1, timeout_s=120)
    assert parked, "no delivery was parked"
    entry = parked[0]
    assert entry["reason"] == "delivery_failed" and entry["error"]
    assert entry["subscription_id"] == streamed["subs"]["hang"]["id"]
    # The articles-dlq shape plus the delivery's fields: where the outbox entry was read,
    # its bytes (what an operator re-publishes), the attempts made and the last status.
    assert entry["stage"] == "deliveries" and entry["topic"] == worker.topic("deliveries")
    assert entry["attempts"] == 6 and entry["status"] is None  # timed out: no answer
    outbox = json.loads(base64.b64decode(entry["value_b64"]))
    assert outbox["webhook_id"] == entry["webhook_id"]
    assert outbox["alert"]["id"] == entry["alert_id"]
    assert base64.b64decode(entry["key"]).decode() == entry["webhook_id"]

    def tries() -> int:  # the receiver records a request when its 5 s sleep ends
        return sum(1 for r in hanging.requests if r["id"] == entry["webhook_id"])

    _until(lambda: tries() >= 6, 15, "the sixth attempt")
    time.sleep(1)
    assert tries() == 6  # STORYWATCH_WEBHOOK_MAX_ATTEMPTS in this worker


def test_deliveries_endpoint_shows_recent_attempts(worker, streamed, receiver) -> None:
    sub = streamed["subs"]["source"]
    _until(lambda: receiver.delivered("/flaky/"), 60, "a delivery")
    status, body = api(worker, "GET", f"/api/subscriptions/{sub['id']}/deliveries")
    assert status == 200
    assert body["deliveries"] and body["deliveries"][0]["outcome"] in {"delivered", "retry"}
    assert any(d["attempts"] == FLAKY_FAILURES + 1 for d in body["deliveries"])


def test_api_errors(worker, streamed) -> None:
    sub_id = streamed["subs"]["keyword"]["id"]
    assert api(worker, "GET", "/api/subscriptions", token=None)[0] == 401
    assert api(worker, "GET", "/api/subscriptions", token="not-a-token-at-all")[0] == 401
    status, body = api(worker, "GET", f"/api/subscriptions/{sub_id}", token=BOB)
    assert status == 404 and body["field"] == "id"
    assert api(worker, "DELETE", f"/api/subscriptions/{sub_id}", token=BOB)[0] == 404
    for bad, field_name in [
        ({"filter": {}}, "name"),
        ({"name": "x", "filter": {"min_size": 0}}, "filter.min_size"),
        ({"name": "x", "filter": {"triggers": ["sometimes"]}}, "filter.triggers[0]"),
        ({"name": "x", "filter": {"query_threshold": "high"}}, "filter.query_threshold"),
        ({"name": "x", "delivery": {"webhook": {"url": "ftp://x.org/"}}}, "delivery.webhook.url"),
        ({"name": "x", "colour": "red"}, "colour"),
    ]:
        status, body = api(worker, "POST", "/api/subscriptions", bad)
        assert status == 400, (bad, body)
        assert body["field"] == field_name, body
    status, body = api(worker, "POST", "/api/subscriptions", raw=b"{not json")
    assert status == 400 and body["field"] == "body"
    status, body = api(worker, "POST", "/api/subscriptions", raw=b" " * 70_000)
    assert status == 413 and body["field"] == "body"
    mine = api(worker, "GET", "/api/subscriptions?limit=2")[1]
    assert len(mine["subscriptions"]) == 2 and mine["next_cursor"]
    rest = api(worker, "GET", f"/api/subscriptions?limit=2&cursor={mine['next_cursor']}")[1]
    names = {s["name"] for s in mine["subscriptions"] + rest["subscriptions"]}
    assert names == {"keyword", "semantic", "source", "hang"}
    assert api(worker, "GET", "/api/subscriptions", token=BOB)[1]["subscriptions"] == []
    assert all("secret" not in s for s in mine["subscriptions"])


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://[::1]:8080/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_ssrf_refused_at_creation(worker, url: str) -> None:
    status, body = api(
        worker, "POST", "/api/subscriptions", {"name": "x", "delivery": {"webhook": {"url": url}}}
    )
    assert status == 400 and body["field"] == "delivery.webhook.url", body
    assert "STORYWATCH_WEBHOOK_ALLOW_HOSTS" in body["error"]


def test_secrets_and_tokens_never_show(worker, streamed) -> None:
    secret = streamed["subs"]["keyword"]["secret"]
    for path in ["/api/subscriptions", f"/api/subscriptions/{streamed['subs']['keyword']['id']}"]:
        text = json.dumps(api(worker, "GET", path)[1])
        assert secret not in text and ALICE not in text
    assert secret not in worker.log() and ALICE not in worker.log() and BOB not in worker.log()
    for route in ["/table", "/table/subscriptions", "/router", "/graph"]:
        try:
            status = urllib.request.urlopen(f"{worker.url}{route}", timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 404, route


def test_sse_stream_and_resume_with_last_event_id(worker, streamed) -> None:
    """The owner's alerts as Server-Sent Events; a client that resumes with Last-Event-ID
    gets the alerts after that id, and only the owner's."""

    def read_events(headers: dict[str, str], count: int) -> list[tuple[str, dict[str, Any]]]:
        request = urllib.request.Request(
            f"{worker.url}/api/alerts/stream?last_event_id=-1&access_token={ALICE}",
            headers=headers,
        )
        events: list[tuple[str, dict[str, Any]]] = []
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            event_id = None
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    events.append((str(event_id), json.loads(line[6:])))
                    if len(events) >= count:
                        break
        return events

    first = read_events({}, 3)
    assert all(e["data"]["owner"] == "alice" for _, e in first)
    resumed = read_events({"Last-Event-ID": first[0][0]}, 2)
    assert [i for i, _ in resumed] == [i for i, _ in first[1:3]]
    status, body = api(worker, "GET", "/api/alerts?limit=5")
    assert status == 200 and len(body["alerts"]) == 5
    assert api(worker, "GET", "/api/alerts?since=yesterday")[0] == 400
    assert api(worker, "GET", "/api/alerts", token=None)[0] == 401


_CLI = (sys.executable, "-m", "streams.cli", "subscriptions")


def cli(worker: WorkerRun, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``storywatch subscriptions --url <worker> --token <token> ARGS`` as a real process."""
    return subprocess.run(  # noqa: PLW1510 - callers assert the return code
        [*_CLI, "--url", worker.url, "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_lists_and_adds_through_the_api(worker, streamed, receiver) -> None:
    listed = cli(worker, ALICE, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {json.loads(line)["name"] for line in listed.stdout.splitlines() if line.strip()}
    assert {"keyword", "semantic", "source", "hang"} <= names
    added = cli(
        worker,
        BOB,
        "add",
        "--name",
        "bob-cli",
        "--any",
        "banana",
        "--webhook",
        receiver.url("/ok/cli"),
    )
    assert added.returncode == 0, added.stderr
    assert "whsec_" in added.stdout
    bad = cli(worker, "wrong-token-000", "list")
    assert bad.returncode == 1 and "STORYWATCH_API_TOKEN" in bad.stderr + bad.stdout
    body = api(worker, "GET", "/api/subscriptions", token=BOB)[1]
    assert [s["name"] for s in body["subscriptions"]] == ["bob-cli"]
    sub_id = body["subscriptions"][0]["id"]
    tested = cli(worker, BOB, "test", sub_id)
    assert tested.returncode == 0, tested.stderr
    _until(lambda: receiver.delivered("/ok/cli"), 30, "the CLI's test alert")
    assert json.loads(receiver.delivered("/ok/cli")[0]["body"])["type"].endswith(".test")


def test_kill_9_with_deliveries_pending_loses_none_and_doubles_none(
    worker, streamed, receiver
) -> None:
    """Deliveries to a receiver that refuses (503) are pending when the worker is killed;
    after the restart and once the receiver accepts, every alert arrives exactly once."""
    status, created = api(
        worker,
        "POST",
        "/api/subscriptions",
        {"name": "gated", "filter": {}, "delivery": {"webhook": {"url": receiver.url("/gate/x")}}},
    )
    assert status == 201
    rows = [dict(r, id=f"again-{r['id']}") for r in streamed["rows"][:60]]
    produce_rows(rows, worker.bootstrap, worker.topic("articles"))
    _until(
        lambda: any(r["path"] == "/gate/x" for r in receiver.requests),
        90,
        "gated deliveries in flight",
    )
    before = api(worker, "GET", "/api/subscriptions")[1]["subscriptions"]
    worker.kill()
    worker.start()
    # The subscriptions live in Kafka: the restarted worker (its tables rebuilt from the
    # changelogs, memory store) serves the same ones.
    assert api(worker, "GET", "/api/subscriptions")[1]["subscriptions"] == before
    receiver.open_gate.set()
    alerts = read_to_end(worker.bootstrap, worker.topic("alerts"))
    expected = {a["id"] for a in alerts if a["data"].get("subscription_id") == created["id"]}
    assert expected
    want = {webhook_id_of(i) for i in expected}
    _until(lambda: {r["id"] for r in receiver.delivered("/gate/")} >= want, 120, "gated alerts")
    time.sleep(3)
    # The restarted worker may fire more alerts meanwhile: the final set is the topic's now.
    final = read_to_end(worker.bootstrap, worker.topic("alerts"))
    want = {
        webhook_id_of(a["id"]) for a in final if a["data"].get("subscription_id") == created["id"]
    }
    _until(lambda: {r["id"] for r in receiver.delivered("/gate/")} >= want, 120, "late alerts")
    ok = Counter(r["id"] for r in receiver.delivered("/gate/"))
    assert set(ok) == want
    assert set(ok.values()) == {1}, "an acknowledged alert was delivered twice"
    parked = [
        r
        for r in read_to_end(worker.bootstrap, worker.topic("alerts_dlq"))
        if r.get("subscription_id") == created["id"]
    ]
    assert not parked, f"gated deliveries were parked instead of delivered: {parked[:2]}"


def test_kill_9_after_the_receiver_accepted_resends_with_the_same_webhook_id(
    worker, streamed, receiver
) -> None:
    """A delivery the receiver accepted (2xx) but whose receipt the worker never wrote: the
    receiver on /hold/ records each request as accepted, then holds its answer; the worker is
    SIGKILLed while it waits, so no receipt exists for any of them (deterministic: no /hold/
    answer is sent before the kill). After the restart the unacknowledged outbox entries are
    delivered again.

    "Doubles none" means here what Standard Webhooks promises: delivery is at-least-once,
    and a re-sent delivery carries the SAME webhook-id (and the same body), so a receiver
    that drops a webhook-id it has already processed processes each alert exactly once.
    Asserted: every request verifies against the subscription's secret; every held
    webhook-id is delivered again after the restart under that id with the same body; each
    webhook-id is the one derived from its alert's id; and the distinct webhook-ids the
    receiver accepted are exactly the subscription's alerts, none missing, none extra."""
    status, created = api(
        worker,
        "POST",
        "/api/subscriptions",
        {"name": "held", "filter": {}, "delivery": {"webhook": {"url": receiver.url("/hold/x")}}},
    )
    assert status == 201
    secret = Webhook(created["secret"])
    rows = [dict(r, id=f"held-{r['id']}") for r in streamed["rows"][:60]]
    produce_rows(rows, worker.bootstrap, worker.topic("articles"))
    assert receiver.held.wait(120), "no delivery reached the holding receiver"
    time.sleep(0.3)  # the deliveries running beside the first are accepted (and held) too
    worker.kill()  # SIGKILL: every /hold/ request so far was accepted and never answered
    time.sleep(0.5)  # a request the worker wrote before dying lands (held) before release
    held = {r["id"]: r["body"] for r in receiver.requests if r["path"] == "/hold/x"}
    assert held and all(r["held"] for r in receiver.requests if r["path"] == "/hold/x")
    receiver.release_hold.set()  # from now on /hold/ answers at once: nothing more is held
    worker.start()
    final: set[str] = set()

    def resent() -> list[dict[str, Any]]:
        return [r for r in receiver.requests if r["path"] == "/hold/x" and not r["held"]]

    def all_delivered() -> bool:
        alerts = read_to_end(worker.bootstrap, worker.topic("alerts"))
        final.clear()
        final.update(
            webhook_id_of(a["id"])
            for a in alerts
            if a["data"].get("subscription_id") == created["id"]
        )
        accepted = {r["id"] for r in receiver.delivered("/hold/")}
        return bool(final) and final <= accepted and set(held) <= {r["id"] for r in resent()}

    # Wait for the outcome without failing here: the assertions below say what went wrong.
    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not all_delivered() and time.monotonic() < deadline:
            time.sleep(0.3)

    wait(180)
    time.sleep(3)  # a late alert of the restarted worker: delivered too (checked below)
    wait(120)
    requests = [r for r in receiver.requests if r["path"] == "/hold/x"]
    for webhook_id, body in held.items():
        again = [r for r in resent() if r["id"] == webhook_id]
        assert again, f"{webhook_id} was accepted before the kill and never re-sent under its id"
        assert all(r["body"] == body for r in again), "a re-send changed the body"
    for request in requests:
        payload = secret.verify(request["body"], request["headers"])
        assert request["id"] == webhook_id_of(payload["id"]), "webhook-id not the alert's"
    accepted = {r["id"] for r in requests if r["status"] == 200}
    assert final and accepted == final, "after dropping repeated webhook-ids: missing or extra"
    print(
        f"{len(held)} accepted and held at the kill, {len(resent())} requests after the "
        f"restart, {len(requests)} in all for {len(final)} alerts"
    )


def test_read_replace_and_delete_one_subscription(worker, receiver) -> None:
    """GET one, PUT a new body (visible on GET and in the list; created_at and the secret
    kept), a refused PUT changes nothing, DELETE answers 204 and the id is gone."""
    status, created = api(
        worker,
        "POST",
        "/api/subscriptions",
        {
            "name": "crud",
            "filter": {"keywords": {"any": ["zanzibar ferry"]}},
            "delivery": {"webhook": {"url": receiver.url("/ok/crud")}},
        },
    )
    assert status == 201, created
    secret = created.pop("secret")
    item = f"/api/subscriptions/{created['id']}"
    assert api(worker, "GET", item) == (200, created)
    time.sleep(1.1)  # updated_at is given to the second: let it move
    change = {
        "name": "crud renamed",
        "filter": {"keywords": {"any": ["harbour strike"]}, "min_sources": 2},
        "delivery": {"webhook": {"url": receiver.url("/ok/crud-moved"), "format": "slack"}},
        "enabled": False,
    }
    status, replaced = api(worker, "PUT", item, change)
    assert status == 200, replaced
    assert (replaced["id"], replaced["name"], replaced["enabled"]) == (
        created["id"],
        "crud renamed",
        False,
    )
    assert replaced["filter"]["keywords"]["any"] == ["harbour strike"]
    assert replaced["filter"]["min_sources"] == 2
    assert replaced["delivery"] == change["delivery"]
    assert replaced["created_at"] == created["created_at"]
    assert replaced["updated_at"] > created["updated_at"]
    assert "secret" not in replaced
    assert api(worker, "GET", item) == (200, replaced)
    listed = api(worker, "GET", "/api/subscriptions?limit=500")[1]["subscriptions"]
    assert [s for s in listed if s["id"] == created["id"]] == [replaced]

    # The secret is kept: a test alert goes to the new URL, signed with the first secret.
    status, queued = api(worker, "POST", f"{item}/test")
    assert status == 202, queued
    _until(lambda: receiver.delivered("/ok/crud-moved"), 30, "the test alert at the new URL")
    hit = receiver.delivered("/ok/crud-moved")[0]
    assert hit["id"] == queued["webhook_id"]
    Webhook(secret).verify(hit["body"], hit["headers"])
    assert not [r for r in receiver.requests if r["path"] == "/ok/crud"]

    for bad, field_name in [
        ({"name": "x", "enabled": "no"}, "enabled"),
        ({"name": "x", "filter": {"growth_steps": [10, 5]}}, "filter.growth_steps[1]"),
        (
            {"name": "x", "delivery": {"webhook": {"url": receiver.url("/x"), "format": "xml"}}},
            "delivery.webhook.format",
        ),
        ({"filter": {}}, "name"),
        ({"name": "x", "secret": "whsec_AAAA"}, "secret"),
    ]:
        status, body = api(worker, "PUT", item, bad)
        assert status == 400, (bad, body)
        assert set(body) == {"error", "field"} and body["field"] == field_name, body
    assert api(worker, "GET", item) == (200, replaced), "a refused PUT changed it"

    status, body = api(worker, "DELETE", item)
    assert (status, body) == (204, None)
    status, body = api(worker, "GET", item)
    assert status == 404 and body["field"] == "id", body
    listed = api(worker, "GET", "/api/subscriptions?limit=500")[1]["subscriptions"]
    assert created["id"] not in {s["id"] for s in listed}
    assert api(worker, "DELETE", item)[0] == 404


def test_another_owners_subscription_answers_404_everywhere(worker) -> None:
    body = {"name": "alice only", "filter": {"keywords": {"any": ["alice"]}}}
    status, created = api(worker, "POST", "/api/subscriptions", body)
    assert status == 201, created
    created.pop("secret")
    item = f"/api/subscriptions/{created['id']}"
    for method, path in [
        ("GET", item),
        ("PUT", item),
        ("DELETE", item),
        ("POST", f"{item}/test"),
        ("GET", f"{item}/deliveries"),
    ]:
        status, answer = api(worker, method, path, body if method == "PUT" else None, token=BOB)
        assert status == 404, (method, path, answer)
        assert set(answer) == {"error", "field"} and answer["field"] == "id", answer
    assert api(worker, "GET", item) == (200, created), "bob changed alice's subscription"
    assert api(worker, "DELETE", item)[0] == 204


def test_a_change_is_read_back_at_once(worker) -> None:
    """Each answer of a write holds: a GET straight after a PUT or DELETE never answers an
    older version (the worker also follows the subscriptions topic, which may lag)."""
    for round_ in range(10):
        status, created = api(worker, "POST", "/api/subscriptions", {"name": f"quick {round_}"})
        assert status == 201, created
        item = f"/api/subscriptions/{created['id']}"
        status, replaced = api(worker, "PUT", item, {"name": f"quick {round_} renamed"})
        assert status == 200, replaced
        assert api(worker, "GET", item)[1]["name"] == f"quick {round_} renamed"
        assert api(worker, "DELETE", item)[0] == 204
        status, body = api(worker, "GET", item)
        assert status == 404, f"round {round_}: a deleted subscription answered {body}"


@pytest.fixture(scope="module")
def late(worker: WorkerRun, receiver: Receiver) -> dict[str, Any]:
    """A Kafka-only and a Slack-format subscription with the same filter, then Sbarro
    articles under fresh ids for them to match; each one's alerts as (key, event) pairs."""
    subs: dict[str, dict[str, Any]] = {}
    slack = {"webhook": {"url": receiver.url("/ok/slack"), "format": "slack"}}
    for name, delivery in {"kafka-only": None, "slack": slack}.items():
        body = {"name": name, "filter": {"keywords": {"any": ["Sbarro"]}}, "delivery": delivery}
        status, created = api(worker, "POST", "/api/subscriptions", body)
        assert status == 201, created
        subs[name] = created
    rows = [dict(r, id=f"late-{r['id']}") for r in read_jsonl(SAMPLE) if SBARRO.search(r["title"])][
        :LATE_ROWS
    ]
    produce_rows(rows, worker.bootstrap, worker.topic("articles"))

    def late_stories() -> int:
        events = read_to_end(worker.bootstrap, worker.topic("stories"))
        return sum(1 for e in events if e["article_id"].startswith("late-"))

    _until(lambda: late_stories() >= len(rows), 180, "the late articles' story events")

    def alerts() -> dict[str, list[tuple[str, dict[str, Any]]]]:
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {name: [] for name in subs}
        by_id = {sub["id"]: name for name, sub in subs.items()}
        for key, event in read_to_end(worker.bootstrap, worker.topic("alerts"), keyed=True):
            name = by_id.get(event["data"].get("subscription_id"))
            if name:
                found[name].append((key, event))
        return found

    def settled() -> bool:
        now = alerts()
        stories = {n: {e["subject"] for _, e in now[n]} for n in now}
        sent = {r["id"] for r in receiver.delivered("/ok/slack")}
        return (
            bool(stories["slack"])
            and stories["slack"] == stories["kafka-only"]
            and ({webhook_id_of(e["id"]) for _, e in now["slack"]} <= sent)
        )

    _until(settled, 90, "both subscriptions' alerts, and the Slack deliveries")
    time.sleep(2)  # anything sent late (to a receiver, or the outbox) arrives meanwhile
    return {"subs": subs, "alerts": alerts()}


def test_kafka_only_subscription_alerts_on_the_topic_and_sends_nothing(
    worker, late, receiver, hanging
) -> None:
    sub = late["subs"]["kafka-only"]
    assert sub["delivery"] == {}
    keyed = late["alerts"]["kafka-only"]
    assert keyed, "the Kafka-only subscription made no alert"
    assert {key for key, _ in keyed} == {sub["id"]}
    assert all(e["type"] == "io.storywatch.subscription.new_story" for _, e in keyed)
    webhook_ids = {webhook_id_of(e["id"]) for _, e in keyed}
    sent = {r["id"] for r in receiver.requests + hanging.requests}
    assert not webhook_ids & sent, "a Kafka-only alert was POSTed to a receiver"
    outbox = read_to_end(worker.bootstrap, worker.topic("deliveries"))
    assert [e for e in outbox if e["subscription_id"] == sub["id"]] == []
    item = f"/api/subscriptions/{sub['id']}"
    assert api(worker, "GET", f"{item}/deliveries") == (200, {"deliveries": []})
    status, body = api(worker, "POST", f"{item}/test")
    assert status == 409, body
    assert set(body) == {"error", "field"} and body["field"] == "delivery.webhook", body
    assert "delivery.webhook" in body["error"]


def _slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_slack_format_delivers_a_signed_slack_message(late, receiver) -> None:
    sub = late["subs"]["slack"]
    alerts = {webhook_id_of(e["id"]): e for _, e in late["alerts"]["slack"]}
    hits = {r["id"]: r for r in receiver.delivered("/ok/slack")}
    assert alerts and set(hits) == set(alerts)
    for webhook_id, hit in hits.items():
        alert, story = alerts[webhook_id], alerts[webhook_id]["data"]["story"]
        message = Webhook(sub["secret"]).verify(hit["body"], hit["headers"])
        assert hit["headers"]["content-type"] == "application/json"
        assert set(message) == {"text", "blocks"}, "not a Slack incoming-webhook body"
        size = f"{story['size']} articles, {story['source_count']} sources"
        headline = " ".join(story["headline"].split())
        assert _slack_unescape(message["text"]) == f"Storywatch new_story: {headline} ({size})"
        assert [b["type"] for b in message["blocks"]] == [
            "section",
            "section",
            "section",
            "context",
        ]
        assert headline in _slack_unescape(message["blocks"][0]["text"]["text"])
        fields = [f["text"] for f in message["blocks"][1]["fields"]]
        assert fields[:2] == ["*Trigger*\nnew_story", f"*Size*\n{size}"]
        assert fields[2].startswith("*Sources*\n") and fields[3].startswith("*Keywords*\n")
        why = message["blocks"][2]["text"]["text"]
        assert why == "*Why it matched*\nkeywords: Sbarro"
        context = message["blocks"][3]["elements"][0]["text"]
        assert f"subscription slack · story {story['story_id']} · " in context
        assert hit["body"] == render_body(alert, "slack")


def test_cli_shows_and_removes_a_subscription(worker, receiver) -> None:
    status, created = api(
        worker,
        "POST",
        "/api/subscriptions",
        {
            "name": "cli show",
            "filter": {"keywords": {"any": ["pizza chain"]}, "triggers": ["new_story", "growth"]},
            "delivery": {"webhook": {"url": receiver.url("/ok/cli-show")}},
        },
    )
    assert status == 201, created
    sub_id = created["id"]
    shown = cli(worker, ALICE, "show", sub_id)
    assert shown.returncode == 0, shown.stderr
    lines = {
        key: value.strip()
        for key, _, value in (line.partition(" ") for line in shown.stdout.splitlines())
    }
    assert lines["id"] == sub_id and lines["name"] == "cli show" and lines["owner"] == "alice"
    assert lines["keywords.any"] == "pizza chain"
    assert lines["triggers"] == "new_story, growth"
    assert lines["webhook"] == receiver.url("/ok/cli-show")
    assert lines["webhook.format"] == "cloudevents"
    assert created["secret"] not in shown.stdout + shown.stderr
    as_json = cli(worker, ALICE, "show", sub_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api(worker, "GET", f"/api/subscriptions/{sub_id}")[1]

    refused = cli(worker, BOB, "rm", sub_id)
    assert refused.returncode == 1 and sub_id in refused.stderr, refused
    assert api(worker, "GET", f"/api/subscriptions/{sub_id}")[0] == 200

    removed = cli(worker, ALICE, "rm", sub_id)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"deleted subscription {sub_id}"
    assert api(worker, "GET", f"/api/subscriptions/{sub_id}")[0] == 404
    gone = cli(worker, ALICE, "show", sub_id)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith("storywatch: error: ") and sub_id in gone.stderr, gone.stderr
    assert "storywatch subscriptions list" in gone.stderr, "the error says what to do next"
    assert "Traceback" not in gone.stderr
    again = cli(worker, ALICE, "rm", sub_id)
    assert again.returncode == 1 and sub_id in again.stderr, again
