"""One poll of a feed, end to end over a local HTTP server, with the Kafka writes recorded:
new items once, 304s free, duplicates across feeds and tracking variants dropped, errors as
health, state written only after the articles were acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.metrics import FeedMetrics
from streams.feeds.model import FeedDef
from streams.feeds.poller import FeedPoller, due_feeds
from streams.feeds.state import FeedState
from tests.feed_server import FeedServer

POLICY = FetchPolicy(user_agent="test", read_timeout_s=1.0, total_timeout_s=5.0, host_delay_s=0)


class Sink:
    """Stands in for Kafka: what was acknowledged, in order."""

    def __init__(self) -> None:
        self.articles: list[dict] = []
        self.seen: dict[str, str] = {}
        self.states: dict[str, FeedState] = {}
        self.fail_sends = False

    async def send_articles(self, articles: list[dict]) -> None:
        if self.fail_sends:
            raise ConnectionError("broker gone")
        self.articles.extend(articles)

    async def mark_seen(self, ids: list[str], feed_id: str, when: float) -> None:
        self.seen.update(dict.fromkeys(ids, feed_id))

    async def write_state(self, state: FeedState) -> None:
        self.states[state.feed_id] = state


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = await FeedServer().start()
    mirror = (srv.data / "mirror.xml").read_text().replace("PORT", str(srv.port))

    async def mirror_handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=mirror, content_type="application/xml")

    srv.route("/mirror.xml", mirror_handler)
    yield srv
    await srv.stop()


@pytest.fixture
async def poller() -> AsyncIterator[tuple[FeedPoller, Sink, CollectorRegistry]]:
    sink = Sink()
    registry = CollectorRegistry()
    async with PageFetcher(POLICY, feed_guard(frozenset({"127.0.0.1"}))) as fetcher:
        yield (
            FeedPoller(
                fetcher=fetcher,
                metrics=FeedMetrics(registry),
                default_interval_s=300,
                is_seen=lambda i: i in sink.seen,
                send_articles=sink.send_articles,
                mark_seen=sink.mark_seen,
                write_state=sink.write_state,
            ),
            sink,
            registry,
        )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_new_once_then_304_then_duplicates_across_feeds(
    server: FeedServer, poller: tuple[FeedPoller, Sink, CollectorRegistry]
) -> None:
    p, sink, registry = poller
    feed = FeedDef.new(f"{server.base}/feeds/rss2.xml")
    state = await p.poll(feed, None)
    assert state.status == "ok" and state.etag
    assert [a["title"] for a in sink.articles] == [
        "Port strike halts container traffic",
        "Ferry timetable changes for winter",
    ]
    assert state.next_poll - state.last_success == pytest.approx(30 * 60)  # the RSS ttl
    again = await p.poll(feed, state)
    assert again.last_outcome == "not_modified" and len(sink.articles) == 2
    mirror = FeedDef.new(f"{server.base}/mirror.xml")
    await p.poll(mirror, None)
    assert [a["title"] for a in sink.articles][2:] == ["Lighthouse restored after storm damage"]
    assert sink.articles[2]["source"] == "Aggregator" and sink.articles[2]["feed_id"] == mirror.id
    assert _value(registry, "storywatch_feed_items_total", result="new") == 3
    assert _value(registry, "storywatch_feed_items_total", result="duplicate") == 1
    assert _value(registry, "storywatch_feed_fetches_total", outcome="ok") == 2
    assert _value(registry, "storywatch_feed_fetches_total", outcome="not_modified") == 1
    assert state.items_last_day(state.last_success or 0) == 2


async def test_a_broken_feed_is_its_health_and_stops_no_other(
    server: FeedServer, poller: tuple[FeedPoller, Sink, CollectorRegistry]
) -> None:
    p, sink, registry = poller
    server.route("/gone", _status(410))
    server.route("/busy", _status(429, {"Retry-After": "3600"}))
    broken = FeedDef.new(f"{server.base}/feeds/page.html")
    gone = FeedDef.new(f"{server.base}/gone")
    busy = FeedDef.new(f"{server.base}/busy")
    good = FeedDef.new(f"{server.base}/feeds/atom.xml")
    for feed in (broken, gone, busy, good):
        await p.poll(feed, None)
    assert sink.states[broken.id].status == "error"
    assert "not an RSS, Atom or JSON feed" in (sink.states[broken.id].last_error or "")
    assert sink.states[gone.id].status == "retired"
    assert sink.states[gone.id].next_poll == float("inf")
    busy_state = sink.states[busy.id]
    assert busy_state.next_poll - (busy_state.last_poll or 0) >= 3600
    assert sink.states[good.id].status == "ok" and len(sink.articles) == 1
    assert _value(registry, "storywatch_feed_fetches_total", outcome="error") == 3


async def test_state_does_not_advance_when_the_articles_were_not_acknowledged(
    server: FeedServer, poller: tuple[FeedPoller, Sink, CollectorRegistry]
) -> None:
    p, sink, _ = poller
    feed = FeedDef.new(f"{server.base}/feeds/rss2.xml")
    sink.fail_sends = True
    with pytest.raises(ConnectionError):
        await p.poll(feed, None)
    assert feed.id not in sink.states and not sink.seen
    sink.fail_sends = False
    await p.poll(feed, sink.states.get(feed.id))
    assert len(sink.articles) == 2  # the next poll sends them: nothing lost


async def test_refused_host_is_health_not_a_crash(
    poller: tuple[FeedPoller, Sink, CollectorRegistry],
) -> None:
    p, _sink, registry = poller
    feed = FeedDef.new("http://10.0.0.1/feed.xml")
    state = await p.poll(feed, None)
    assert state.status == "error" and "STORYWATCH_FEED_ALLOW_HOSTS" in (state.last_error or "")
    assert _value(registry, "storywatch_feed_fetches_total", outcome="refused") == 1


def test_due_feeds_only_of_assigned_partitions() -> None:
    a, b, c = (FeedDef.new(f"https://x.example/{n}") for n in "abc")
    polled = 2.0**32  # after the feeds were added
    states = {
        b.id: FeedState(b.id, next_poll=100.0, last_poll=polled),
        c.id: FeedState(c.id, next_poll=10.0, last_poll=polled),
    }
    partitions = {a.id: 0, b.id: 0, c.id: 1}
    due = due_feeds([a, b, c], states, partitions=partitions, assigned={0}, busy=set(), now=50.0)
    assert due == [a]
    due = due_feeds(
        [a, b, c], states, partitions=partitions, assigned={0, 1}, busy={a.id}, now=500.0
    )
    assert due == [c, b]
    retired = FeedState(a.id, status="retired", next_poll=float("inf"), last_poll=10.0)
    readded = FeedDef(a.id, a.url, added_at=20.0)
    assert due_feeds(
        [readded], {a.id: retired}, partitions=partitions, assigned={0}, busy=set(), now=30.0
    ) == [readded]
    assert not due_feeds(
        [FeedDef(a.id, a.url, added_at=5.0)],
        {a.id: retired},
        partitions=partitions,
        assigned={0},
        busy=set(),
        now=30.0,
    )


def _status(status: int, headers: dict[str, str] | None = None) -> object:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers or {})

    return handler


async def test_two_feeds_polled_at_once_produce_a_shared_article_once(
    server: FeedServer, poller: tuple[FeedPoller, Sink, CollectorRegistry]
) -> None:
    import asyncio

    p, sink, _ = poller
    await asyncio.gather(
        p.poll(FeedDef.new(f"{server.base}/feeds/rss2.xml"), None),
        p.poll(FeedDef.new(f"{server.base}/mirror.xml"), None),
    )
    titles = [a["title"] for a in sink.articles]
    assert titles.count("Port strike halts container traffic") == 1
    assert len(titles) == 3


def test_last_success_series_of_feeds_no_longer_polled_are_dropped() -> None:
    registry = CollectorRegistry()
    metrics = FeedMetrics(registry)
    metrics.succeeded("a", 100.0)
    metrics.succeeded("b", 200.0)
    metrics.keep_only({"b"})
    name = "storywatch_feed_last_success_timestamp_seconds"
    assert registry.get_sample_value(name, {"feed_id": "a"}) is None
    assert registry.get_sample_value(name, {"feed_id": "b"}) == 200.0
