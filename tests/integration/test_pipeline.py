"""End to end on a real broker: produce real articles and bad records, run the worker as a
subprocess, read `stories`, `alerts` and `articles-dlq` back; restart it and keep going."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from kafka import KafkaProducer
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from config.settings import Settings
from streams.engine.clustering import ClusterParams
from streams.engine.embedding import Embedder
from streams.engine.offline import cluster_articles, read_jsonl
from streams.producer import produce_rows
from streams.stages.embed import Limits
from tests.conftest import SAMPLE
from tests.integration.dashboard_browser import start_chromium
from tests.integration.worker_process import WorkerRun, read_to_end, read_topic, records_to_end

pytestmark = pytest.mark.kafka

# Why 300 + 100: a few hundred real articles before the restart, and enough after it that
# running stories get new members.
FIRST, SECOND = 300, 100

BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"this is not json", "not_json"),
    (b"\xff\xfe\x00garbage", "not_utf8"),
    (b'{"title": "no id here"}', "missing_field"),
    (b'["a", "list"]', "not_object"),
    (b'{"id": "bad-1", "title": 42}', "wrong_type"),
    (b'{"id": "bad-2", "title": "x", "published_at": "yesterday"}', "bad_timestamp"),
    (b'{"id": "big", "title": "' + b"x" * 1_000_100 + b'"}', "too_large"),
]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return read_jsonl(SAMPLE)[: FIRST + SECOND]


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    worker = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("worker"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def first_phase(run: WorkerRun, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Produce the first articles, the bad records and two re-sends; collect the outputs."""
    produce_rows(rows[:FIRST], run.bootstrap, run.topic("articles"))
    producer = KafkaProducer(bootstrap_servers=run.bootstrap, max_request_size=2_000_000)
    for raw, _ in BAD_RECORDS:
        producer.send(run.topic("articles"), raw)
    producer.flush()
    producer.close()
    resend_same_id = dict(rows[0])
    resend_new_id = {**rows[1], "id": "copy-of-" + rows[1]["id"]}
    produce_rows([resend_same_id, resend_new_id], run.bootstrap, run.topic("articles"))
    expected = FIRST + 1  # the same-id re-send makes no event; the copy with a new id does
    stories = read_topic(run.bootstrap, run.topic("stories"), expect=expected, timeout_s=240)
    dlq = read_topic(run.bootstrap, run.topic("dlq"), expect=len(BAD_RECORDS), timeout_s=30)
    return {
        "stories": stories,
        "dlq": dlq,
        "copy_id": resend_new_id["id"],
        "copy_of": rows[1]["id"],
    }


def test_every_valid_article_gets_exactly_one_story(first_phase, rows) -> None:
    ids = Counter(event["article_id"] for event in first_phase["stories"])
    expected = {row["id"] for row in rows[:FIRST]} | {first_phase["copy_id"]}
    assert set(ids) == expected
    assert max(ids.values()) == 1, "an article got more than one story event"


def test_reworded_reports_share_a_story(first_phase, rows) -> None:
    """Each big gold story is recognised as one: most of its differently worded headlines
    land in a single story. (Precision is measured by `storywatch eval`, docs/QUALITY.md.)"""
    gold = {row["id"]: row["label"] for row in rows[:FIRST]}
    titles = {row["id"]: row["title"] for row in rows}
    story_of = {e["article_id"]: e["story_id"] for e in first_phase["stories"]}
    members: dict[str, list[str]] = defaultdict(list)
    for article_id, label in gold.items():
        members[label].append(article_id)
    big = [ids for ids in members.values() if len(ids) >= 25]
    assert len(big) >= 4, "the sample should hold several big stories"
    for ids in big:
        story, count = Counter(story_of[i] for i in ids).most_common(1)[0]
        assert count > len(ids) / 2, f"gold story of {len(ids)} split, largest part {count}"
        together = {titles[i] for i in ids if story_of[i] == story}
        assert len(together) >= 5, "only copies joined, not re-wordings"


def test_worker_matches_offline_mode(first_phase, rows, embedder: Embedder) -> None:
    offline = cluster_articles(
        rows[:FIRST],
        embedder,
        ClusterParams.from_settings(Settings().engine),
        limits=Limits.from_settings(Settings().embed),
    )
    live = {e["article_id"]: (e["story_id"], e["dup_group_id"]) for e in first_phase["stories"]}
    mismatched = [
        a.article_id
        for a in offline.assignments
        if live[a.article_id] != (a.story_id, a.dup_group_id)
    ]
    assert not mismatched, f"{len(mismatched)} articles differ, e.g. {mismatched[:5]}"


def test_exact_resends_do_not_inflate(first_phase) -> None:
    events = {e["article_id"]: e for e in first_phase["stories"]}
    copy, original = events[first_phase["copy_id"]], events[first_phase["copy_of"]]
    assert copy["decision"] == "duplicate"
    assert copy["story_id"] == original["story_id"]
    # The story's size counts each distinct article once: the copy adds nothing to it.
    story = [e for e in first_phase["stories"] if e["story_id"] == copy["story_id"]]
    distinct = {e["article_id"] for e in story if e["decision"] != "duplicate"}
    assert max(e["story_size"] for e in story) == len(distinct)


def test_invalid_records_reach_the_dlq_with_reasons(first_phase) -> None:
    dlq = first_phase["dlq"]
    assert sorted(d["reason"] for d in dlq) == sorted(reason for _, reason in BAD_RECORDS)
    originals = {base64.b64decode(d["value_b64"]) for d in dlq}
    assert originals == {raw for raw, _ in BAD_RECORDS}
    for record in dlq:
        assert record["topic"].startswith("articles-")
        assert record["partition"] == 0 and record["offset"] >= FIRST
        assert record["error"]


def test_emerging_alerts_are_cloudevents_once_per_story(run: WorkerRun, first_phase) -> None:
    read_topic(run.bootstrap, run.topic("alerts"), expect=1, timeout_s=30)
    alerts = read_to_end(run.bootstrap, run.topic("alerts"))
    assert alerts, "no emerging-story alert although stories grew past 5 articles"
    ids = [a["id"] for a in alerts]
    assert len(ids) == len(set(ids))
    for alert in alerts:
        assert alert["specversion"] == "1.0"
        assert alert["type"] == "io.storywatch.story.emerging"
        data = alert["data"]
        assert data["size"] >= Settings().emerging_min_articles
        assert len(data["sources"]) >= Settings().emerging_min_sources
        assert data["headline"] and data["sample_urls"] and data["first_seen"].endswith("Z")


def test_alerts_read_with_the_cloudevents_kafka_binding(run: WorkerRun, first_phase) -> None:
    """Structured mode as the CloudEvents Kafka binding defines it: the `content-type` header
    names the format (the Java SDK's reader throws "Unknown encoding" without it), and the
    `cloudevents` SDK's own Kafka binding parses each record."""
    read_topic(run.bootstrap, run.topic("alerts"), expect=1, timeout_s=30)
    records = records_to_end(run.bootstrap, run.topic("alerts"), decode=False)
    assert records, "no alert to read"
    for record in records:
        headers = dict(record.headers)
        assert headers["content-type"] == b"application/cloudevents+json; charset=UTF-8"
        message = KafkaMessage(headers=headers, key=record.key, value=record.value)
        event = from_structured(message, JSONFormat())
        assert event.get_id() == json.loads(record.value)["id"]
        assert event.get_type() == "io.storywatch.story.emerging"


METRIC_FAMILIES = [
    "storywatch_articles_consumed_total",
    "storywatch_articles_invalid_total",
    "storywatch_articles_duplicate_total",
    "storywatch_embedding_batch_size_bucket",
    "storywatch_embedding_duration_seconds_bucket",
    "storywatch_clustering_decisions_total",
    "storywatch_active_stories",
    "storywatch_alerts_emitted_total",
    "storywatch_end_to_end_latency_seconds_bucket",
    "storywatch_faust_messages_received_total",
]


def test_metrics_endpoint(run: WorkerRun, first_phase) -> None:
    status, text = run.http("/metrics")
    assert status == 200
    for family in METRIC_FAMILIES:
        assert family in text, family
    consumed = next(
        line for line in text.splitlines() if line.startswith("storywatch_articles_consumed_total")
    )
    assert float(consumed.split()[-1]) == FIRST + len(BAD_RECORDS) + 2
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make system-deps` (Debian package prometheus)"
    check = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=text.encode(),
        capture_output=True,
        timeout=60,
    )
    # promtool exits 1 on lint *warnings* too (e.g. Faust's own metric names); errors fail here.
    assert b"error while linting" not in check.stderr + check.stdout, check.stderr
    assert not any(line.startswith(b"error") for line in check.stderr.splitlines())


@pytest.mark.browser
def test_dashboard_in_a_real_browser(run: WorkerRun, first_phase, tmp_path: Path) -> None:
    """The page, in headless Chromium (Selenium; an open event stream never lets
    ``--dump-dom`` finish), lists the API's top story."""
    _, body = run.http("/api/stories?limit=5")
    top = json.loads(body)["stories"][0]
    driver = start_chromium(tmp_path / "profile")
    try:
        driver.get(f"{run.url}/")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "li.story .headline")
        )
        headlines = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "li.story .headline")]
        assert headlines[0] == top["headline"]
        WebDriverWait(driver, 30).until(
            lambda d: "active stories" in d.find_element(By.ID, "status").text
        )
    finally:
        driver.quit()


def test_restart_keeps_running_stories(run: WorkerRun, first_phase, rows, embedder) -> None:
    run.stop()
    run.start()
    produce_rows(rows[FIRST:], run.bootstrap, run.topic("articles"))
    expected = len(first_phase["stories"]) + SECOND
    stories = read_topic(run.bootstrap, run.topic("stories"), expect=expected, timeout_s=240)
    later = stories[len(first_phase["stories"]) :]
    assert {e["article_id"] for e in later} == {row["id"] for row in rows[FIRST:]}
    earlier_ids = {e["story_id"] for e in first_phase["stories"]}
    joined_old = [e for e in later if e["story_id"] in earlier_ids]
    assert joined_old, "no article after the restart joined a story from before it"
    # Exactly what one uninterrupted offline pass gives: the state survived the restart.
    offline = cluster_articles(
        rows,
        embedder,
        ClusterParams.from_settings(Settings().engine),
        limits=Limits.from_settings(Settings().embed),
    )
    expected_ids = {a.article_id: a.story_id for a in offline.assignments}
    assert all(e["story_id"] == expected_ids[e["article_id"]] for e in later)
    assert "Restore complete" in run.log()
