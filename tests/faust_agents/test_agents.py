"""The Faust agents under ``agent.test_context()`` (in-memory channels, memory tables).

Output topics are replaced by recorders: these tests pin the agents' glue; the real-broker
path is covered in tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest

from config.settings import load_settings
from streams.contracts.records import EmbeddedArticle, StoryEvent
from streams.engine.clustering import ClusterParams, StoryEngine
from streams.engine.evidence import TextEvidence
from streams.engine.vectors import encode_vector
from streams.pipeline import build_app

# One worker built for these tests, as `storywatch worker` builds its own (nothing is built
# when a product module is imported).
pipeline = build_app(load_settings())
app, metrics, tables, topics = pipeline.app, pipeline.metrics, pipeline.tables, pipeline.topics
settings, subscription_store = pipeline.settings, pipeline.subscription_store
embed_agent = pipeline.agents["agents.embed"]
cluster_agent = pipeline.agents["agents.cluster"]
alerts_agent = pipeline.agents["agents.alerts"]
deliveries = pipeline.agents["agents.deliveries"]


class Recorder:
    """Stands in for ``Topic.send``: keeps what an agent sent and, like the real one, returns
    a future of the broker's acknowledgement (here already resolved)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked


class FakeSender:
    """Stands in for ``WebhookSender`` (an async context manager); a subclass answers
    ``send``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    async def __aenter__(self) -> FakeSender:
        return self

    async def __aexit__(self, *args: Any) -> None: ...


def _webhook_subscription(
    name: str, url: str = "https://hooks.example.org/x", owner: str = "alice"
) -> Any:
    """An owner's subscription with a webhook, served by the worker's store (no broker)."""
    from streams.subscriptions.model import Subscription, SubscriptionSpec, WebhookTarget

    spec = SubscriptionSpec(name, webhook=WebhookTarget(url))
    subscription = Subscription.create(spec, owner, 1e9)
    subscription_store._apply(subscription.id, subscription.to_record())
    subscription_store.follower.caught_up.set()  # as if the topic were read
    return subscription


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait up to 5 s for ``condition`` (the caller asserts what it needs afterwards)."""
    for _ in range(50):
        if condition():
            return
        await asyncio.sleep(0.1)


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

    tables_used = (tables.stories, tables.groups, tables.seen, tables.journal, tables.alerts)
    for table in (*tables_used, tables.matches):
        table.data.clear()
    cluster_agent.restore_needed = True
    alerts_agent.reload_needed = True  # its activity index, rebuilt from the cleared table
    # The stories agent matches subscriptions after the alert stage: the store read to its
    # end (empty unless a test adds one), as a started worker has it.
    subscription_store._records.clear()
    subscription_store.version += 1
    subscription_store.follower.caught_up.set()
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
    async with cluster_agent.agent.test_context() as agent:
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
    async with cluster_agent.agent.test_context() as agent:
        await agent.put(_embedded("b1", "Storm floods coast", 0.0))
        await _until(sent["stories"], 1)
    first = sent["stories"].sent[0]["value"].story_id
    cluster_agent.engine.restore([], [], {})  # the in-memory index is gone, tables remain
    cluster_agent.restore_needed = True
    alerts_agent.reload_needed = True  # its activity index, rebuilt from the cleared table
    async with cluster_agent.agent.test_context() as agent:
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
    async with alerts_agent.agent.test_context() as agent:
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
    async with embed_agent.agent.test_context() as agent:
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
        async with embed_agent.agent.test_context() as agent:
            for row in rows:
                await agent.put(json.dumps(row).encode(), key=row["id"].encode())
            await _until(sent["embedded"], 3)
            await _until(sent["dlq"], 1)
    assert [s["value"].id for s in sent["embedded"].sent] == ["p0", "p1", "p3"]
    dead = sent["dlq"].sent[0]["value"]
    assert dead["reason"] == "embedding_failed"
    assert "model choked" in dead["error"]
    assert json.loads(dead["value_text"])["id"] == "p2"


def _fake_encode(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), dtype=np.float32)
    out[:, 0] = 1.0
    return out


class HeldRecorder(Recorder):
    """A ``Topic.send`` whose broker acknowledgements wait until ``release()``."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[asyncio.Future[None]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(held)
        return held

    def release(self) -> None:
        for future in self.pending:
            if not future.done():
                future.set_result(None)


async def test_embed_agent_acks_input_only_after_the_broker_acknowledged_its_output() -> None:
    """Acks follow effects: a batch whose embedded records (and dead letters) are not yet
    acknowledged by the broker stays unacked, so a worker killed then re-reads it."""
    held, dlq = HeldRecorder(), HeldRecorder()
    rows = [json.dumps({"id": f"k{i}", "title": f"Story {i}"}).encode() for i in range(3)]
    with (
        patch.object(embed_agent.embedder, "encode", _fake_encode),
        patch.object(topics.embedded, "send", held),
        patch.object(topics.dlq, "send", dlq),
    ):
        async with embed_agent.agent.test_context() as agent:
            events = [await agent.put(row, key=b"k") for row in rows]
            events.append(await agent.put(b"{broken", key=b"bad"))
            await _until(held, 3)
            await _until(dlq, 1)
            await asyncio.sleep(0.3)
            assert len(held.sent) == 3 and len(dlq.sent) == 1
            assert not any(e.message.acked for e in events)
            held.release()
            await asyncio.sleep(0.3)
            assert not any(e.message.acked for e in events)  # the dead letter is still held
            dlq.release()
            for _ in range(50):
                if all(e.message.acked for e in events):
                    break
                await asyncio.sleep(0.1)
            assert all(e.message.acked for e in events)


async def test_embed_agent_dead_letters_poison_records_and_goes_on(sent) -> None:
    """Records that make a parser raise anything (deep nesting: RecursionError; a
    5,000-digit number: ValueError; a bad replay header) never stop the agent."""
    poison = [b"[" * 100_000, b'{"a":' * 50_000, b'{"id": ' + b"9" * 5000 + b', "title": "x"}']
    good = [json.dumps({"id": f"ok{i}", "title": f"Fine story {i}"}).encode() for i in range(3)]
    with patch.object(embed_agent.embedder, "encode", _fake_encode):
        async with embed_agent.agent.test_context() as agent:
            await agent.put(good[0], key=b"ok0")
            for raw in poison:
                await agent.put(raw, key=b"poison")
            await agent.put(good[1], key=b"ok1")
            await agent.put(good[2], key=b"ok2", headers={"storywatch-replay-time": b"soon"})
            await _until(sent["embedded"], 3)
            await _until(sent["dlq"], 3)
    assert [s["value"].id for s in sent["embedded"].sent] == ["ok0", "ok1", "ok2"]
    dead = [s["value"] for s in sent["dlq"].sent]
    assert [d["reason"] for d in dead] == ["too_deep", "too_deep", "not_json"]
    assert all(d["stage"] == "embed" for d in dead)
    assert [base64.b64decode(d["value_b64"]) for d in dead] == poison


async def test_cluster_agent_dead_letters_in_the_shared_shape(sent, fresh_state) -> None:
    """The cluster stage writes the same dead-letter shape as the embed stage."""
    broken = _embedded("c1", "Broken vector", 0.0)
    broken.vector = "not base64!"
    async with cluster_agent.agent.test_context() as agent:
        await agent.put(broken)
        await agent.put(_embedded("c2", "Fine one", 0.0))
        await _until(sent["stories"], 1)
        await _until(sent["dlq"], 1)
    dead = sent["dlq"].sent[0]["value"]
    assert dead["reason"] == "clustering_failed" and dead["stage"] == "cluster"
    assert json.loads(base64.b64decode(dead["value_b64"]))["id"] == "c1"
    assert set(dead) == {
        "reason", "error", "stage", "topic", "partition", "offset", "timestamp", "key",
        "value_b64", "value_text", "truncated", "sha256",
    }  # fmt: skip
    assert [s["value"].article_id for s in sent["stories"].sent] == ["c2"]


async def test_alerts_agent_forgets_stories_quiet_past_the_window(sent, fresh_state) -> None:
    """alert-state is bounded: a story inactive for longer than the story window leaves it."""
    alerts_agent.reload_needed = True
    window = alerts_agent.quiet_stories.window_s
    old, new = _story_event(1, "a", story="st-old"), _story_event(1, "a", story="st-new")
    new.event_time = new.last_seen = old.last_seen + window + 60
    async with alerts_agent.agent.test_context() as agent:
        await agent.put(old)
        for _ in range(50):
            if "st-old" in tables.alerts:
                break
            await asyncio.sleep(0.1)
        assert "st-old" in tables.alerts
        await agent.put(new)
        for _ in range(50):
            if "st-new" in tables.alerts:
                break
            await asyncio.sleep(0.1)
    assert "st-new" in tables.alerts
    assert "st-old" not in tables.alerts


async def test_a_batch_torn_by_a_crash_is_completed_from_the_journal(sent, fresh_state) -> None:
    """A kill between the three tables' writes left the story counting the last batch while
    its seen records were lost. The restore completes the batch from the journal, so the
    replayed article is recognised (no second event) and the story is not counted twice."""
    async with cluster_agent.agent.test_context() as agent:
        await agent.put(_embedded("t1", "Bridge collapses downtown", 0.0))
        await agent.put(_embedded("t2", "Downtown bridge collapse", 0.1))
        await _until(sent["stories"], 2)
        await asyncio.sleep(0.3)  # the batch's table writes
    story = sent["stories"].sent[0]["value"].story_id
    last_batch = tables.journal["last"]
    for key in last_batch["seen"]:  # the torn part: these never reached the changelog
        tables.seen.pop(key, None)
    cluster_agent.engine.restore([], [], {})
    cluster_agent.restore_needed = True
    alerts_agent.reload_needed = True  # its activity index, rebuilt from the cleared table
    async with cluster_agent.agent.test_context() as agent:
        await agent.put(_embedded("t2", "Downtown bridge collapse", 0.1))  # the replay
        await agent.put(_embedded("t3", "Bridge downtown collapsed", 0.05))
        await _until(sent["stories"], 3)
        await asyncio.sleep(0.3)
    events = [s["value"] for s in sent["stories"].sent]
    assert [e.article_id for e in events] == ["t1", "t2", "t3"]
    assert events[2].story_id == story and events[2].story_size == 3


async def test_two_outbox_entries_of_one_alert_are_delivered_once(fresh_state) -> None:
    """A replayed stage re-sends an outbox entry: the two copies may be in flight at once.
    The second waits for the first and finds its receipt; the receiver gets one POST."""
    import agents.deliveries as deliveries_agent
    from streams.contracts.outbox import outbox_entry
    from streams.subscriptions.alert_events import test_alert
    from streams.subscriptions.sender import Attempt

    posts: list[str] = []

    class SlowReceiver(FakeSender):
        async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
            posts.append(headers["webhook-id"])
            await asyncio.sleep(0.3)
            return Attempt("delivered", 200, None, 0.3)

    subscription = _webhook_subscription("twice")
    tables.receipts.data.clear()
    entry = outbox_entry(test_alert(subscription, source="/t", time=1e9), 1e9)
    with patch.object(deliveries_agent, "WebhookSender", SlowReceiver):
        async with deliveries.agent.test_context() as agent:
            await agent.put(entry, key=entry["webhook_id"])
            await agent.put(entry, key=entry["webhook_id"])
            await _eventually(lambda: bool(tables.receipts.get(entry["webhook_id"])))
            await asyncio.sleep(0.6)
    assert posts == [entry["webhook_id"]]
    assert tables.receipts[entry["webhook_id"]]["outcome"] == "delivered"


async def test_an_outbox_entry_whose_delivery_raises_is_parked_and_acked(fresh_state) -> None:
    """A malformed entry (or a bug) raising inside a delivery is parked on alerts-dlq with
    the error and acked: it neither holds the outbox's committed offset back nor is lost;
    the entries after it are still delivered."""
    import agents.deliveries as deliveries_agent
    from streams.contracts.outbox import outbox_entry
    from streams.subscriptions.alert_events import test_alert
    from streams.subscriptions.sender import Attempt

    posts: list[str] = []

    class Receiver(FakeSender):
        async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
            posts.append(headers["webhook-id"])
            return Attempt("delivered", 200, None, 0.01)

    subscription = _webhook_subscription("ok")
    tables.receipts.data.clear()
    good = outbox_entry(test_alert(subscription, source="/t", time=1e9), 1e9)
    parked = Recorder()
    with (
        patch.object(deliveries_agent, "WebhookSender", Receiver),
        patch.object(topics.alerts_dlq, "send", parked),
    ):
        async with deliveries.agent.test_context() as agent:
            broken = await agent.put({"webhook_id": "msg_broken"}, key="msg_broken")
            fine = await agent.put(good, key=good["webhook_id"])
            await _eventually(lambda: broken.message.acked and fine.message.acked)
            assert broken.message.acked and fine.message.acked
    assert posts == [good["webhook_id"]]
    [dead] = [s["value"] for s in parked.sent]
    assert dead["webhook_id"] == "msg_broken"
    assert dead["reason"] == "delivery_crashed"
    assert "KeyError" in dead["error"] and "re-publish" in dead["error"]
    # The articles-dlq shape (the outbox record's coordinates and bytes) plus the delivery's
    # fields; the malformed entry's missing fields are None.
    assert set(dead) == {
        "reason", "error", "stage", "topic", "partition", "offset", "timestamp", "key",
        "value_b64", "value_text", "truncated", "sha256",
        "webhook_id", "subscription_id", "alert_id", "attempts", "status",
    }  # fmt: skip
    assert dead["stage"] == "deliveries" and dead["topic"] == topics.deliveries.get_topic_name()
    assert (dead["subscription_id"], dead["alert_id"], dead["attempts"]) == (None, None, 0)
    assert json.loads(base64.b64decode(dead["value_b64"])) == {"webhook_id": "msg_broken"}
    assert tables.receipts["msg_broken"]["outcome"] == "parked"


async def test_cluster_agent_sends_one_merged_event_after_the_bridging_article(
    sent, fresh_state
) -> None:
    """Story A (3 articles), story B (1, orthogonal), then articles halfway between them
    (cosine 0.71 to both): the second bridge merges B into A."""
    params = ClusterParams(story_threshold=0.55, merge_bridges=2, merge_score=0.6)
    before = _value(metrics.stories_merged)
    with patch.object(cluster_agent, "engine", StoryEngine(params)):
        async with cluster_agent.agent.test_context() as agent:
            for n in range(3):
                await agent.put(_embedded(f"a{n}", f"Zq{n} alpha", 0.0))
            await agent.put(_embedded("b0", "Zq3 beta", np.pi / 2))
            for n in range(3):
                await agent.put(_embedded(f"bridge{n}", f"Zq{4 + n} gamma", np.pi / 4))
            await _until(sent["stories"], 8)
            await asyncio.sleep(0.2)  # a second merged event would come after this
    events = [s["value"] for s in sent["stories"].sent]
    order = [e.article_id + (":merged" if e.is_merge else "") for e in events]
    assert order == ["a0", "a1", "a2", "b0", "bridge0", "bridge1", "bridge1:merged", "bridge2"]
    merge = events[6]
    assert (merge.story_id, merge.absorbed_id) == (events[0].story_id, events[3].story_id)
    assert sent["stories"].sent[6]["key"] == merge.story_id
    assert merge.merge is not None and merge.merge["bridges"] == 2
    assert merge.story_size == 6 and events[7].story_id == merge.story_id  # a0-2, b0, bridge0-1
    assert _value(metrics.stories_merged) == before + 1


async def test_alerts_agent_does_not_refire_for_a_merged_story(sent, fresh_state) -> None:
    """B fired; B merges into A (the merged event read twice, as after a crash); A then gets
    enough articles from enough sources to fire on its own: nothing more fires."""
    rule = alerts_agent.emerging_rule
    survivor, absorbed = "st-a", "st-b"
    fields = _story_event(1, "solo", survivor).asdict()
    fields.update(decision="merged", absorbed_id=absorbed, merge={"bridges": 2})
    merge = StoryEvent(**fields)
    async with alerts_agent.agent.test_context() as agent:
        for n in range(1, rule.min_articles + 1):
            await agent.put(_story_event(n, f"outlet-{n % rule.min_sources}", absorbed))
        await agent.put(_story_event(100, "solo", survivor))
        await agent.put(merge)
        await agent.put(merge)
        for n in range(200, 200 + rule.min_articles + 1):
            await agent.put(_story_event(n, f"other-{n % rule.min_sources}", survivor))
        await agent.put(_story_event(300, "late", absorbed))  # a late event of the old id
        await _until(sent["alerts"], 2)
        await asyncio.sleep(0.3)
    assert [a["value"]["id"] for a in sent["alerts"].sent] == [f"{absorbed}:emerging"]
    assert tables.alerts[absorbed]["merged_into"] == survivor
    assert tables.alerts[survivor]["fired"] is True


async def test_a_dead_receiver_over_its_backlog_cap_does_not_stall_another(fresh_state) -> None:
    """A receiver that hangs holds at most its backlog cap of the shared pending slots: its
    further entries are parked on alerts-dlq at once (receiver_backlog_full, counted) and
    acked, and another receiver's entry is still delivered while it hangs."""
    import agents.deliveries as deliveries_agent
    import streams.subscriptions.delivery as delivery_service
    from streams.contracts.outbox import outbox_entry
    from streams.subscriptions.alert_events import test_alert
    from streams.subscriptions.sender import Attempt

    delivered: list[str] = []
    hung: list[str] = []
    dead_answers = asyncio.Event()  # the dead receiver hangs until the test ends

    class Receivers(FakeSender):
        async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
            if "dead.example.org" in url:
                hung.append(headers["webhook-id"])
                await dead_answers.wait()
                return Attempt("failed", 410, "gone", 0.01)
            delivered.append(headers["webhook-id"])
            return Attempt("delivered", 200, None, 0.01)

    dead = _webhook_subscription("dead", "https://dead.example.org:8443/hook")
    alive = _webhook_subscription("alive", "https://ok.example.org/hook")
    tables.receipts.data.clear()
    dead_entries = [
        outbox_entry(test_alert(dead, source="/t", time=1e9 + i), 1e9 + i) for i in range(5)
    ]
    good = outbox_entry(test_alert(alive, source="/t", time=1e9), 1e9)
    parked = Recorder()
    before = _value(metrics.deliveries, outcome="backlog_full")
    capped = dataclasses.replace(settings.webhooks, webhook_receiver_backlog=2)
    with (
        patch.object(deliveries_agent, "WebhookSender", Receivers),
        patch.object(deliveries, "webhooks", capped),
        patch.object(delivery_service, "_MAX_PENDING", 3),  # the dead receiver alone fills it
        patch.object(topics.alerts_dlq, "send", parked),
    ):
        async with deliveries.agent.test_context() as agent:
            dead_puts = [await agent.put(e, key=e["webhook_id"]) for e in dead_entries]
            fine = await agent.put(good, key=good["webhook_id"])
            await _eventually(lambda: fine.message.acked)
            assert delivered == [good["webhook_id"]]
            assert fine.message.acked
            assert hung == [e["webhook_id"] for e in dead_entries[:2]]
            assert [p.message.acked for p in dead_puts] == [False, False, True, True, True]
            full = [s["value"] for s in parked.sent]
            dead_answers.set()  # let the two hanging deliveries end (failed: parked)
            await _eventually(lambda: all(p.message.acked for p in dead_puts))
    assert [p["webhook_id"] for p in full] == [e["webhook_id"] for e in dead_entries[2:]]
    assert {p["reason"] for p in full} == {"receiver_backlog_full"}
    assert full[0]["error"].startswith(
        "receiver_backlog_full: alice's deliveries to https://dead.example.org:8443 hold 2 waiting"
    )
    assert "fix the receiver, then re-send" in full[0]["error"]
    assert _value(metrics.deliveries, outcome="backlog_full") == before + 3
    assert dead_entries[2]["webhook_id"] not in tables.receipts  # a re-send is delivered
    log = tables.delivery_log[dead.id]
    assert {row["outcome"] for row in log} >= {"backlog_full"}


async def test_one_owners_dead_path_on_a_shared_receiver_does_not_park_another_owners(
    fresh_state,
) -> None:
    """The backlog is per owner and receiver: Alice's hanging deliveries to a receiver that
    Bob uses too fill Alice's backlog only; Bob's delivery to the same receiver (scheme,
    host, port) goes out at once instead of being parked as receiver_backlog_full."""
    import agents.deliveries as deliveries_agent
    from streams.contracts.outbox import outbox_entry
    from streams.subscriptions.alert_events import test_alert
    from streams.subscriptions.sender import Attempt

    delivered: list[str] = []
    release = asyncio.Event()

    class SharedReceiver(FakeSender):
        async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
            if url.endswith("/alice-dead"):
                await release.wait()
                return Attempt("failed", 410, "gone", 0.01)
            delivered.append(headers["webhook-id"])
            return Attempt("delivered", 200, None, 0.01)

    dead = _webhook_subscription("dead", "https://hub.example.org/alice-dead", owner="alice")
    bobs = _webhook_subscription("fine", "https://hub.example.org/bob", owner="bob")
    tables.receipts.data.clear()
    alice_entries = [
        outbox_entry(test_alert(dead, source="/t", time=1e9 + i), 1e9 + i) for i in range(4)
    ]
    bob_entry = outbox_entry(test_alert(bobs, source="/t", time=1e9), 1e9)
    parked = Recorder()
    capped = dataclasses.replace(settings.webhooks, webhook_receiver_backlog=2)
    with (
        patch.object(deliveries_agent, "WebhookSender", SharedReceiver),
        patch.object(deliveries, "webhooks", capped),
        patch.object(topics.alerts_dlq, "send", parked),
    ):
        async with deliveries.agent.test_context() as agent:
            puts = [await agent.put(e, key=e["webhook_id"]) for e in alice_entries]
            fine = await agent.put(bob_entry, key=bob_entry["webhook_id"])
            await _eventually(lambda: fine.message.acked)
            assert delivered == [bob_entry["webhook_id"]]
            full = [s["value"] for s in parked.sent]
            release.set()
            await _eventually(lambda: all(p.message.acked for p in puts))
    assert [p["webhook_id"] for p in full] == [e["webhook_id"] for e in alice_entries[2:]]
    assert all(p["error"].startswith("receiver_backlog_full: alice's") for p in full)


async def test_the_stories_agent_matches_on_the_alert_stages_verdict(sent, fresh_state) -> None:
    """One agent runs the alert stage, then the match stage on its verdict: a subscription's
    ``emerging`` trigger fires on the event the emerging alert fires on, and the story's
    matching state holds no copy of the rule's state."""
    from streams.subscriptions.model import Subscription, SubscriptionFilter, SubscriptionSpec

    spec = SubscriptionSpec("bursts", SubscriptionFilter(triggers=("emerging",)))
    subscription = Subscription.create(spec, "alice", 1e9)
    subscription_store._apply(subscription.id, subscription.to_record())
    rule = alerts_agent.emerging_rule
    async with alerts_agent.agent.test_context() as agent:
        for n in range(1, rule.min_articles + 3):
            await agent.put(_story_event(n, f"outlet-{n % rule.min_sources}"))
        await _until(sent["alerts"], 2)
        await asyncio.sleep(0.3)  # a third alert would come after this
    ids = [a["value"]["id"] for a in sent["alerts"].sent]
    story = sent["alerts"].sent[0]["value"]["subject"]
    assert ids == [f"{story}:emerging", f"{subscription.id}:{story}:emerging"]
    assert set(tables.matches[story]) == {"match", "last_seen"}
    assert tables.alerts[story]["fired"] is True


def test_subscriptions_agent_scores_a_batch_to_the_queries_at_their_threshold() -> None:
    """One matrix product per batch; each event gets the queries its story's centroid
    reached (the matcher's semantic candidates), an event without a centroid none."""
    from streams.stages.cluster import StoryStep
    from streams.subscriptions.matching import SemanticIndex

    axis = np.eye(384, dtype=np.float32)
    index = SemanticIndex(
        [("near", "floods"), ("far", "rates"), ("strict", "floods")],
        [axis[0], axis[1], axis[0]],
        [0.5, 0.5, 0.99],
    )
    on_floods = replace_fields(_story_event(1, "a"), centroid=_vector(0.3))  # cos 0.955
    no_centroid = _story_event(2, "b")
    with patch.object(alerts_agent.matching.subscriptions, "semantic", index):
        steps = [StoryStep.of_event(e) for e in (on_floods, no_centroid)]
        scores = alerts_agent.matching.subscriptions.scores(steps)
    assert scores == [pytest.approx({"near": np.cos(0.3)}, abs=1e-6), {}]


def replace_fields(event: StoryEvent, **fields: Any) -> StoryEvent:
    return StoryEvent(**{**event.asdict(), **fields})


async def test_a_parked_entry_re_published_to_the_outbox_is_delivered(fresh_state) -> None:
    """What a parked delivery's dead letter tells the operator to do works: the entry
    re-published to the outbox (a later record) is sent again once the receiver is fixed,
    while a replay of the record it was parked from is not (`already_final`)."""
    import agents.deliveries as deliveries_agent
    import streams.subscriptions.delivery as delivery_service
    from streams.contracts.outbox import outbox_entry
    from streams.subscriptions.alert_events import test_alert
    from streams.subscriptions.sender import Attempt

    answers = ["failed", "delivered"]  # refused (4xx: parked at once), then fixed
    posts: list[str] = []

    class Receiver(FakeSender):
        async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
            posts.append(headers["webhook-id"])
            outcome = answers.pop(0)
            return Attempt(outcome, 200 if outcome == "delivered" else 404, None, 0.01)

    subscription = _webhook_subscription("fixed")
    tables.receipts.data.clear()
    entry = outbox_entry(test_alert(subscription, source="/t", time=1e9), 1e9)
    webhook_id = entry["webhook_id"]
    parked = Recorder()
    with (
        patch.object(deliveries_agent, "WebhookSender", Receiver),
        patch.object(topics.alerts_dlq, "send", parked),
    ):
        async with deliveries.agent.test_context() as agent:
            first = await agent.put(entry, key=webhook_id)
            await _eventually(lambda: first.message.acked)
            receipt = tables.receipts[webhook_id]
            assert receipt["outcome"] == "parked"
            position = (first.message.partition, first.message.offset)
            assert delivery_service.already_final(receipt, position)  # its replay: skipped
            [dead] = [s["value"] for s in parked.sent]
            assert (dead["webhook_id"], dead["attempts"], dead["status"]) == (webhook_id, 1, 404)
            assert dead["alert_id"] == entry["alert"]["id"]
            assert dead["subscription_id"] == subscription.id
            republished = json.loads(dead["value_text"])  # what the operator re-publishes
            assert republished == entry
            again = await agent.put(republished, key=dead["webhook_id"])
            await _eventually(lambda: again.message.acked)
    assert posts == [webhook_id, webhook_id]
    assert tables.receipts[webhook_id]["outcome"] == "delivered"
    assert [s["value"]["reason"] for s in parked.sent] == ["delivery_failed"]


async def test_emerging_alerts_do_not_wait_for_the_subscriptions(sent, fresh_state) -> None:
    """At a worker's start the subscriptions topic is still being read: the stories agent's
    emerging alert goes out all the same; only the matching of that batch waits."""
    rule = alerts_agent.emerging_rule
    subscription_store.follower.caught_up.clear()  # the store has not read its topic yet
    try:
        async with alerts_agent.agent.test_context() as agent:
            for n in range(1, rule.min_articles + 1):
                await agent.put(_story_event(n, f"outlet-{n % rule.min_sources}", "st-early"))
            await _until(sent["alerts"], 1)
            assert [a["value"]["id"] for a in sent["alerts"].sent] == ["st-early:emerging"]
            assert "st-early" not in tables.alerts  # its state waits for the batch's matching
            subscription_store.follower.caught_up.set()
            await _eventually(lambda: "st-early" in tables.alerts)
    finally:
        subscription_store.follower.caught_up.set()
    assert tables.alerts["st-early"]["fired"] is True
