"""Benchmark: 1,000 feeds served locally, polled the way a worker polls them.

A server process serves N feeds (default 1,000) of 20 items each on 100 loopback addresses
(127.0.0.10-109: 10 feeds per "host", so the per-host politeness applies as it would across
real sites), with ETags. This process runs the poller of agents/feeds.py (same fetcher,
guard, parser, language detection, dedup, and the Kafka writes with acks=all to a real broker)
32 polls at a time, twice: round 1 finds every item new, round 2 gets a 304 for every feed.
With --detect-language the feeds name no language, so every item goes through lingua. Prints
wall time, CPU time (this process: fetch, parse, dedup, Kafka client) and peak RSS;
cost per new article and per 304.

    nice -n 10 .venv/bin/python bench/feeds.py [--feeds 1000] [--bootstrap HOST:PORT]

Without --bootstrap (or STORYWATCH_KAFKA_BOOTSTRAP) it starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from prometheus_client import CollectorRegistry

from config.settings import Settings
from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.language import LanguageDetector
from streams.feeds.metrics import FeedMetrics
from streams.feeds.model import FeedDef
from streams.feeds.poller import FeedPoller
from streams.feeds.state import FeedState
from streams.feeds.views import FeedViews
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import KafkaConnection

HOSTS = [f"127.0.0.{i}" for i in range(10, 110)]
ITEMS = 20
CONCURRENCY = 32  # as agents/feeds.py
WORDS = (
    "council port storm election court market strike health school bridge river energy "
    "police budget museum airport farmers hospital rail workers"
).split()


def _feed_body(n: int, port: int, host: str, language: bool) -> bytes:
    items = []
    for i in range(ITEMS):
        a, b, c = WORDS[(n + i) % 20], WORDS[(n * 3 + i) % 20], WORDS[(i * 7) % 20]
        items.append(
            f"<item><title>The {a} and the {b}: {c} news {n}-{i}</title>"
            f"<link>http://{host}:{port}/news/{n}/{i}?utm_source=rss</link>"
            f"<description>Officials said on Monday that the {a} would meet the {b} "
            f"representatives to discuss the {c} plans, item {i} of feed {n}.</description>"
            f"<pubDate>Mon, 07 Dec 2026 09:{i:02d}:00 GMT</pubDate></item>"
        )
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed {n}</title>"
        f"{'<language>en</language>' if language else ''}{''.join(items)}</channel></rss>"
    ).encode()


def _serve(port: int, language: bool, ready: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        async def handler(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            etag = f'"feed-{n}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            host = request.host.split(":")[0]
            return web.Response(
                body=_feed_body(n, port, host, language),
                content_type="application/rss+xml",
                headers={"ETag": etag},
            )

        app = web.Application()
        app.router.add_get("/feed/{n}.xml", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for host in HOSTS:
            await web.TCPSite(runner, host, port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round(poller: FeedPoller, feeds: list[FeedDef], states: dict[str, FeedState]) -> float:
    queue: asyncio.Queue[FeedDef] = asyncio.Queue()
    for feed in feeds:
        queue.put_nowait(feed)

    async def worker() -> None:
        while not queue.empty():
            feed = queue.get_nowait()
            states[feed.id] = await poller.poll(feed, states.get(feed.id))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.monotonic() - started


async def _bench(bootstrap: str, n_feeds: int, port: int) -> None:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_articles=f"bench-articles-{run}",
        topic_feed_state=f"bench-feed-state-{run}",
        topic_feed_seen=f"bench-feed-seen-{run}",
    )
    producer = KafkaConnection.from_settings(settings.kafka).aio_producer(
        acks="all", enable_idempotence=True, linger_ms=5
    )
    ensure_topics(
        bootstrap, settings.kafka, settings.topics, settings.embed
    )  # the bench's own topic names (run id)
    await producer.start()
    views = FeedViews(settings.kafka, settings.topics, producer.send)
    registry = CollectorRegistry()
    metrics = FeedMetrics(registry)
    policy = FetchPolicy(user_agent="Storywatch-Feeds/1.0 (+bench)", host_delay_s=1.0)
    feeds = [
        FeedDef.new(f"http://{HOSTS[n % len(HOSTS)]}:{port}/feed/{n}.xml") for n in range(n_feeds)
    ]
    states: dict[str, FeedState] = {}
    try:
        async with PageFetcher(policy, feed_guard(frozenset(HOSTS))) as fetcher:
            poller = FeedPoller(
                fetcher=fetcher,
                metrics=metrics,
                default_interval_s=300,
                is_seen=views.is_seen,
                send_articles=views.send_articles,
                mark_seen=views.mark_seen,
                write_state=views.write_state,
                detector=LanguageDetector(),
            )
            cpu0 = _cpu()
            wall_new = await _round(poller, feeds, states)
            cpu_new = _cpu() - cpu0
            new = registry.get_sample_value("storywatch_feed_items_total", {"result": "new"})
            cpu1 = _cpu()
            wall_304 = await _round(poller, feeds, states)
            cpu_304 = _cpu() - cpu1
            n304 = registry.get_sample_value(
                "storywatch_feed_fetches_total", {"outcome": "not_modified"}
            )
    finally:
        await producer.stop()
    errors = [s for s in states.values() if s.status != "ok"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"feeds={n_feeds} items/feed={ITEMS} hosts={len(HOSTS)} concurrency={CONCURRENCY}")
    print(f"round 1 (all new): wall {wall_new:.1f} s, CPU {cpu_new:.1f} s, new articles {new:.0f}")
    print(f"round 2 (all 304): wall {wall_304:.1f} s, CPU {cpu_304:.2f} s, 304s {n304:.0f}")
    print(f"feeds in error: {len(errors)}; peak RSS {rss:.0f} MiB")
    print()
    print("| round | feeds polled | wall s | CPU s | per unit |")
    print("|---|---|---|---|---|")
    print(
        f"| all new | {n_feeds} | {wall_new:.1f} | {cpu_new:.1f} | "
        f"{1000 * cpu_new / max(new or 1, 1):.2f} ms CPU per new article ({new:.0f}) |"
    )
    print(
        f"| all 304 | {n_feeds} | {wall_304:.1f} | {cpu_304:.2f} | "
        f"{1000 * cpu_304 / max(n304 or 1, 1):.2f} ms CPU per 304 ({n304:.0f}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--bootstrap", default=os.environ.get("STORYWATCH_KAFKA_BOOTSTRAP"))
    parser.add_argument(
        "--detect-language",
        action="store_true",
        help="feeds without <language>: every item goes through lingua",
    )
    args = parser.parse_args()
    from streams.kafka.local import free_port, start_broker, stop_broker

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=_serve, args=(port, not args.detect_language, ready), daemon=True
    )
    server.start()
    if not ready.wait(60):
        sys.exit("the feed server did not start")
    data_dir = None
    bootstrap = args.bootstrap
    try:
        if bootstrap is None:
            settings = Settings()
            data_dir = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
            info = start_broker(
                settings.kafka_dir, settings.kafka_version, port=free_port(), data_dir=data_dir
            )
            bootstrap = info.bootstrap
        asyncio.run(_bench(bootstrap, args.feeds, port))
    finally:
        server.terminate()
        if data_dir is not None:
            stop_broker(data_dir)


if __name__ == "__main__":
    main()
