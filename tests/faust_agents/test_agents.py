"""The Faust agents under ``agent.test_context()`` (in-memory channels, memory tables).

Output topics are replaced by recorders: these tests pin the agents' glue; the real-broker
path is covered in tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest

import agents.alerts as alerts_agent
import agents.cluster as cluster_agent
import agents.embed as embed_agent
from streams.app import app, metrics, tables, topics
from streams.engine.evidence import TextEvidence
from streams.engine.vectors import encode_vector
from streams.records import EmbeddedArticle, StoryEvent


class Recorder:
    """Stands in for ``Topic.send``: keeps what an agent sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.sent.append(kwargs)


@pytest.fixture(autouse=True)
def _memory_app() -> None:
    app.finalize()


@pytest.fixture
def sent() -> Iterator[dict[str, Recorder]]:
    recorders = {name: Recorder() for name in ("dlq", "embedded", "stories", "alerts")}
    with (
        patch.object(topics.dlq, "send", recorders["dlq"]),
        patch.object(topics.embedded, "send", recorders["embedded"]),
        patch.object(topics.stories, "send", recorders["stories"]),
        patch.object(topics.alerts, "send", recorders["alerts"]),
    ):
        yield recorders


@pytest.fixture
def fresh_state() -> Iterator[None]:
    for table in (tables.stories, tables.groups, tables.seen, tables.alerts):
        table.data.clear()
    cluster_agent._restore_needed[0] = True
    yield


def _vector(angle: float) -> str:
    """A unit vector at ``angle`` radians from axis 0, in the plane of axes 0 and 1."""
    v = np.zeros(384, dtype=np.float32)
    v[0], v[1] = np.cos(angle), np.sin(angle)
    return encode_vector(v)


def _embedded(article_id: str, title: str, angle: float, source: str = "s") -> EmbeddedArticle:
    return EmbeddedArticle(
        id=article_id,
        title=title,
        text="",
        source=source,
        url=None,
        published_at=None,
        lang=None,
        vector=_vector(angle),
        record_ts=1e9,
        produced_at=1e9,
    )


async def _until(recorder: Recorder, count: int) -> None:
    """The cluster and alert agents take batches (closed after stage_max_wait_s): wait for
    ``count`` sends, at most 10 s."""
    for _ in range(100):
        if len(recorder.sent) >= count:
            return
        await asyncio.sleep(0.1)


def _value(metric: Any, **labels: str) -> float:
    target = metric.labels(**labels) if labels else metric
    return float(target._value.get())


async def test_cluster_agent_assigns_and_persists(sent, fresh_state) -> None:
    before_new = _value(metrics.clustering_decisions, decision="new")
    async with cluster_agent.cluster_articles.test_context() as agent:
        await agent.put(_embedded("a1", "Quake hits city", 0.0))
        await agent.put(_embedded("a2", "Earthquake strikes the city", 0.2))  # cos 0.98
        await agent.put(_embedded("a3", "Election results are in", 1.5))  # cos 0.07
        await agent.put(_embedded("a1", "Quake hits city", 0.0))  # exact re-send of a1
        await _until(sent["stories"], 3)
        await asyncio.sleep(0.2)  # a 4th event (the re-send) would come after this
    events = [s["value"] for s in sent["stories"].sent]
    assert [e.article_id for e in events] == ["a1", "a2", "a3"]
    assert events[0].story_id == events[1].story_id != events[2].story_id
    assert [e.decision for e in events] == ["new", "joined", "new"]
    assert all(s["key"] == s["value"].story_id for s in sent["stories"].sent)
    assert tables.stories[events[0].story_id]["size"] == 2
    assert set(tables.seen) >= {"id:a1", "id:a2", "id:a3"}
    assert _value(metrics.clustering_decisions, decision="new") == before_new + 2


async def test_cluster_agent_restores_from_tables(sent, fresh_state) -> None:
    async with cluster_agent.cluster_articles.test_context() as agent:
        await agent.put(_embedded("b1", "Storm floods coast", 0.0))
        await _until(sent["stories"], 1)
    first = sent["stories"].sent[0]["value"].story_id
    cluster_agent.engine.restore([], [], {})  # the in-memory index is gone, tables remain
    cluster_agent._restore_needed[0] = True
    async with cluster_agent.cluster_articles.test_context() as agent:
        await agent.put(_embedded("b2", "Coast flooded by storm", 0.1))
        await _until(sent["stories"], 2)
    assert sent["stories"].sent[1]["value"].story_id == first
    assert sent["stories"].sent[1]["value"].story_size == 2


def _story_event(n: int, source: str, story: str = "st-x") -> StoryEvent:
    return StoryEvent(
        article_id=f"n{n}",
        story_id=story,
        dup_group_id=f"dg{n}",
        decision="joined",
        similarity=0.8,
        story_size=n,
        source_count=n,
        first_seen=1e9,
        last_seen=1e9 + n,
        headline="Big news",
        event_time=1e9 + n,
        source=source,
        url=f"https://example.org/{n}",
        title="Big news",
        produced_at=1e9,
    )


async def test_alerts_agent_emits_one_cloudevent_per_story(sent, fresh_state) -> None:
    rule = alerts_agent.emerging_rule
    async with alerts_agent.evaluate_alerts.test_context() as agent:
        for n in range(1, rule.min_articles + 3):
            await agent.put(_story_event(n, f"outlet-{n % rule.min_sources}"))
        await _until(sent["alerts"], 1)
        await asyncio.sleep(0.2)  # a second alert for the same story would come after this
    assert len(sent["alerts"].sent) == 1
    event = sent["alerts"].sent[0]["value"]
    assert event["specversion"] == "1.0" and event["type"] == "io.storywatch.story.emerging"
    assert event["id"] == "st-x:emerging"
    assert event["data"]["size"] == rule.min_articles
    assert len(event["data"]["sources"]) == rule.min_sources


@pytest.mark.model
async def test_embed_agent_forwards_valid_and_dead_letters_invalid(sent, embedder) -> None:
    good = json.dumps({"id": "g1", "title": "Markets rally", "text": "Stocks rose."}).encode()
    async with embed_agent.embed_articles.test_context() as agent:
        await agent.put(b"{not json", key=b"k1")
        await agent.put(good, key=b"g1")
        await agent.put(json.dumps({"id": "g2"}).encode(), key=b"g2")
        # the batch closes after embed_max_wait_s; then the model runs in its thread
        for _ in range(300):
            if sent["embedded"].sent:
                break
            await asyncio.sleep(0.1)
    dead = [s["value"] for s in sent["dlq"].sent]
    assert [d["reason"] for d in dead] == ["not_json", "missing_field"]
    assert dead[0]["value_text"] == "{not json"
    forwarded = [s["value"] for s in sent["embedded"].sent]
    assert [f.id for f in forwarded] == ["g1"]
    vector = np.frombuffer(base64.b64decode(forwarded[0].vector), dtype="<f4")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    # the text's own evidence travels with the vector (the cluster stage does not re-read it)
    assert forwarded[0].text_evidence() == TextEvidence.of("Markets rally", "Stocks rose.")


async def test_embed_agent_isolates_a_text_the_model_fails_on(sent) -> None:
    """A batch the model fails on is retried one by one: the poisoned article goes to the
    DLQ with reason embedding_failed, the others are forwarded in input order."""

    def encode(texts: list[str]) -> np.ndarray:
        if any("POISON" in t for t in texts):
            raise RuntimeError("model choked")
        out = np.zeros((len(texts), 384), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    rows = [{"id": f"p{i}", "title": f"Story {i}", "text": "Body."} for i in range(4)]
    rows[2]["title"] = "POISON pill"
    with patch.object(embed_agent.embedder, "encode", encode):
        async with embed_agent.embed_articles.test_context() as agent:
            for row in rows:
                await agent.put(json.dumps(row).encode(), key=row["id"].encode())
            await _until(sent["embedded"], 3)
            await _until(sent["dlq"], 1)
    assert [s["value"].id for s in sent["embedded"].sent] == ["p0", "p1", "p3"]
    dead = sent["dlq"].sent[0]["value"]
    assert dead["reason"] == "embedding_failed"
    assert "model choked" in dead["error"]
    assert json.loads(dead["value_text"])["id"] == "p2"
