"""Readiness, consumer lag and the docker/ monitoring files against a real worker fed by the
real broker, scraped by a real Prometheus server (Debian's ``prometheus``).

Every PromQL expression of the Grafana dashboard and of the alert rules is evaluated through
Prometheus' HTTP API: each must parse, and each dashboard panel must return data.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.engine.offline import read_jsonl
from streams.kafka.local import free_port
from streams.producer import produce_rows
from tests.conftest import SAMPLE
from tests.integration.worker_process import WorkerRun, broker_lag, read_topic
from tests.prometheus_files import RULES, binary, dashboard_panels, rule_exprs

pytestmark = pytest.mark.kafka

TOKEN = "ops-token-0123456789"
# Why 120: enough articles for new, joined and near-duplicate decisions and an emerging alert
# in the sample, few enough to embed in seconds.
ARTICLES = 120
BAD_RECORDS = (b"not json", b'{"title": "no id"}')
RECOVERED = ("Restore complete!", "Resuming flow...")


@dataclass
class HealthProbe:
    """Polls /healthz while the worker starts; notes each answer and whether the worker's log
    already said that table recovery had completed when the answer came."""

    worker: WorkerRun
    answers: list[tuple[int, dict[str, Any], bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(f"{self.worker.url}/healthz", timeout=2) as response:
                    status, body = response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                status, body = exc.code, json.loads(exc.read())
            except OSError:
                time.sleep(0.05)
                continue
            log = self.worker.log()
            self.answers.append((status, body, any(line in log for line in RECOVERED)))
            time.sleep(0.05)


class Receiver:
    """A webhook receiver on 127.0.0.1 that accepts everything."""

    def __init__(self) -> None:
        self.count = 0
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.count += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@dataclass
class Prometheus:
    """A real Prometheus server on a free port, scraping the worker every second."""

    workdir: Path
    target: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "storywatch", "static_configs": [{"targets": [self.target]}]}
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _until(self._ready, 60, "Prometheus to answer /-/ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                "prometheus exited:\n" + (self.workdir / "prometheus.log").read_text()
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (errors come back as a JSON body too)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return _get_json(url)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerRun, HealthProbe]]:
    run = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("observability"))
    run.settings.update(
        {
            "STORYWATCH_API_TOKENS": f"ops:{TOKEN}",
            "STORYWATCH_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            # two: a second worker (the last test) takes one of them
            "STORYWATCH_ARTICLES_PARTITIONS": "2",
        }
    )
    probe = HealthProbe(run)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    try:
        run.start()
        # the first answers after "Worker ready" are enough: the probe has seen the start
        _until(lambda: any(status == 200 for status, _, _ in probe.answers), 120, "/healthz 200")
    finally:
        probe.stop.set()
        thread.join()
    yield run, probe
    run.stop()


@pytest.fixture(scope="module")
def fed(worker: tuple[WorkerRun, HealthProbe], receiver: Receiver) -> WorkerRun:
    """A subscription with a webhook, then real articles, bad records and re-sends."""
    run, _ = worker
    body = json.dumps(
        {
            "name": "everything",
            "filter": {"triggers": ["new_story"]},
            "delivery": {"webhook": {"url": f"http://127.0.0.1:{receiver.port}/hook"}},
        }
    ).encode()
    request = urllib.request.Request(f"{run.url}/api/subscriptions", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    rows = read_jsonl(SAMPLE)[:ARTICLES]
    produce_rows(rows, run.bootstrap, run.topic("articles"))
    producer = KafkaProducer(bootstrap_servers=run.bootstrap)
    for raw in BAD_RECORDS:
        producer.send(run.topic("articles"), raw)
    producer.flush()
    producer.close()
    produce_rows(rows[:1], run.bootstrap, run.topic("articles"))  # an exact re-send
    read_topic(run.bootstrap, run.topic("stories"), expect=ARTICLES, timeout_s=240)
    _until(lambda: receiver.count > 0, 120, "a webhook delivery")
    return run


@pytest.fixture(scope="module")
def prometheus(fed: WorkerRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{fed.web_port}")
    server.start()
    yield server
    server.stop()


def test_livez_answers(worker: tuple[WorkerRun, HealthProbe]) -> None:
    run, _ = worker
    status, text = run.http("/livez")
    assert (status, json.loads(text)) == (200, {"status": "alive"})


def test_healthz_is_ready_only_after_table_recovery(worker: tuple[WorkerRun, HealthProbe]) -> None:
    run, probe = worker
    assert probe.answers, "the probe never reached /healthz"
    for status, body, recovered in probe.answers:
        if status == 200:
            assert body == {"status": "ready"}
            assert recovered, "200 before the worker's log said table recovery completed"
        else:
            assert status == 503, body
            assert body["status"] == "not ready" and body["reasons"], body
            assert body["error"] == "; ".join(body["reasons"])
    assert probe.answers[-1][0] == 200
    # the web server answers before Faust recovers the tables (it waits 1 s before starting):
    # the probe saw the worker not ready, and why
    first_ready = next(i for i, (status, _, _) in enumerate(probe.answers) if status == 200)
    before = [body for status, body, _ in probe.answers[:first_ready]]
    assert any("tables are recovering" in reason for b in before for reason in b["reasons"])
    status, text = run.http("/healthz")
    assert (status, json.loads(text)) == (200, {"status": "ready"})


def _lag_samples(run: WorkerRun) -> dict[tuple[str, int], float]:
    _, text = run.http("/metrics")
    return {
        (sample.labels["topic"], int(sample.labels["partition"])): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "storywatch_consumer_lag"
        for sample in family.samples
    }


def test_consumer_lag_per_topic_partition_matches_the_broker(fed: WorkerRun) -> None:
    # the worker's agents consume these (tables' changelogs are not consumer lag)
    consumed = {(fed.topic(name), 0) for name in ("articles", "embedded", "stories", "deliveries")}
    consumed.add((fed.topic("articles"), 1))
    _until(lambda: consumed <= set(_lag_samples(fed)), 60, "the lag of every consumed topic")
    assert not any("changelog" in topic for topic, _ in _lag_samples(fed))
    # all processed: once offsets are committed and the gauge refreshed, both agree
    last: dict[str, Any] = {}

    def agree() -> bool:
        last["worker"] = _lag_samples(fed)
        last["broker"] = broker_lag(fed, sorted(last["worker"]))
        return last["worker"] == {k: float(v) for k, v in last["broker"].items()}

    _until(agree, 60, f"the worker's lag to match the broker's ({last})")
    assert last["broker"][(fed.topic("articles"), 0)] == 0


def test_every_dashboard_panel_returns_data(prometheus: Prometheus) -> None:
    panels = dashboard_panels()
    assert panels
    answers: dict[str, Any] = {}

    def every_target_has_data() -> bool:
        for _, exprs in panels:
            for expr in exprs:
                answers[expr] = prometheus.query(expr)
        return all(
            answer["status"] == "success" and answer["data"]["result"]
            for answer in answers.values()
        )

    # rate() needs two scrapes of a series inside its window: wait for them
    _until(every_target_has_data, 90, "every dashboard expression to return data")
    for title, exprs in panels:
        assert exprs, f"panel {title!r} has no query"
        for expr in exprs:
            assert answers[expr]["status"] == "success", (title, expr, answers[expr])
            assert answers[expr]["data"]["resultType"] == "vector"
            assert answers[expr]["data"]["result"], (title, expr)


def test_every_rule_expression_parses_and_rules_load(prometheus: Prometheus) -> None:
    exprs = rule_exprs()
    assert len(exprs) == 7
    for name, expr in exprs.items():
        answer = prometheus.query(expr)
        assert answer["status"] == "success", (name, expr, answer)
    loaded: dict[str, Any] = {}

    def evaluated() -> bool:
        groups = _get_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
        loaded.update({rule["name"]: rule for group in groups for rule in group["rules"]})
        return set(loaded) == set(exprs) and all(
            rule.get("lastEvaluation", "").startswith("2") and rule["health"] == "ok"
            for rule in loaded.values()
        )

    _until(evaluated, 30, f"Prometheus to evaluate every rule ({loaded})")
    # the worker is up and healthy: the rules that watch it are quiet
    assert loaded["StorywatchWorkerDown"]["state"] == "inactive"
    assert prometheus.query('up{job="storywatch"}')["data"]["result"][0]["value"][1] == "1"


def test_a_joining_worker_makes_the_first_unready_until_the_rebalance_ends(
    fed: WorkerRun, worker: tuple[WorkerRun, HealthProbe], prometheus: Prometheus
) -> None:
    """A second worker joins the group: the first answers 503 while it rebalances and
    recovers, 200 after; each then reports the lag of its own partitions only."""
    second = WorkerRun(
        fed.bootstrap, fed.workdir / "second", run_id=fed.run_id, settings=dict(fed.settings)
    )
    probe = HealthProbe(fed)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    try:
        second.start()
        _until(lambda: second.holds(fed.topic("articles")), 120, "the second worker's share")
        _until(lambda: probe.answers and probe.answers[-1][0] == 200, 120, "the first ready")
    finally:
        probe.stop.set()
        thread.join()
    try:
        reasons = {r for status, body, _ in probe.answers if status == 503 for r in body["reasons"]}
        assert any("rebalancing" in r or "recovering" in r for r in reasons), probe.answers[:3]
        assert json.loads(second.http("/healthz")[1]) == {"status": "ready"}
        articles = {(fed.topic("articles"), 0), (fed.topic("articles"), 1)}

        def split() -> bool:
            mine, theirs = set(_lag_samples(fed)), set(_lag_samples(second))
            return not mine & theirs and articles <= mine | theirs and bool(theirs & articles)

        _until(split, 60, "each worker to report only its own partitions")
    finally:
        second.stop()
