"""Latency of ``GET /api/stories`` with 100,000 active stories in the dashboard's read model.

Why: the issue asks the story API to page and sort from kept indexes, not by sorting every
story per request, and to be usable at 100,000 active stories.

What it does: feeds the read model (streams/read_model) through its public API,
``apply_story_event``, with N synthetic stories (default 100,000; ~3.5 articles each, sizes
long-tailed up to 500, times over 72 hours, headlines of words drawn from a 5,000-word
vocabulary with a Zipf-like skew, 500 sources); then serves it over real HTTP with aiohttp,
in a server process of its own (the same query parsing and read-model call as the worker's
view, ``streams.web.stories.story_query`` + ``StoryReadModel.query``, and JSON encoding),
and times sequential requests from this process (httpx, one keep-alive connection), per
query: p50 / p95 / p99 over ``--requests`` each, after 20 warm-up requests. The server
prints its feed rate and its RSS once loaded (the read model's memory at N stories, plus
the interpreter and libraries, ~60 MiB).

Run: .venv/bin/python bench/api_stories.py [--stories 100000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from aiohttp import web

from streams.kafka.local import free_port
from streams.read_model import BadCursor, StoryQuery, StoryReadModel
from streams.web.http import HttpError
from streams.web.stories import story_query

HOURS = 72


def feed(model: StoryReadModel, stories: int, seed: int = 1) -> int:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    vocabulary = [f"w{n}" for n in range(5000)]
    weights = [1.0 / (n + 1) ** 0.8 for n in range(len(vocabulary))]
    sources = [f"source-{n}" for n in range(500)]
    start = 1_700_000_000.0
    # Story sizes: most stories 1-2 articles, a long tail of big ones (mean ~3).
    sizes = [min(500, int(rng.paretovariate(1.3))) for _ in range(stories)]
    # Each article at a random time in the window; applied in time order, as they arrive.
    plan: list[tuple[float, int, int]] = []
    for story, size in enumerate(sizes):
        begin = rng.uniform(0, HOURS * 3600 * 0.9)
        for n in range(size):
            plan.append((start + begin + n * rng.uniform(10, 600), story, n))
    plan.sort()
    headlines = [" ".join(rng.choices(vocabulary, weights, k=7)) for _ in range(stories)]
    count = 0
    for when, story, n in plan:
        source = rng.choice(sources)
        model.apply_story_event(
            {
                "article_id": f"a{story}-{n}",
                "story_id": f"st-{story}",
                "event_time": when,
                "decision": "new" if n == 0 else "joined",
                "story_size": n + 1,
                "source_count": min(n + 1, 1 + n // 2),
                "first_seen": when if n == 0 else start,
                "last_seen": when,
                "headline": headlines[story],
                "keywords": headlines[story].split()[:5],
                "title": headlines[story],
                "source": source,
                "url": f"https://example.org/{story}/{n}",
                "dup_group_id": f"dg-{story}-{n // 3}",
                "similarity": 0.6,
                "lexical_similarity": 0.3,
                "shared_terms": headlines[story].split()[:3],
            }
        )
        count += 1
    return count


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def serve(stories: int, port: int) -> None:
    """The server process: feed the read model, serve it, say "ready" on stdout."""
    # A window far past the data's span: every story stays active (the worst case).
    model = StoryReadModel(window_s=HOURS * 3600.0 * 100, articles_per_story=200)
    t0 = time.perf_counter()
    applied = feed(model, stories)
    took = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.collect()
    held_mib = _rss_mib()  # the generator's data is gone: what the read model holds
    top = model.query(StoryQuery(sort="size", limit=1)).stories[0]

    async def handle(request: web.Request) -> web.Response:
        try:
            page = model.query(story_query(request))  # type: ignore[arg-type]
        except (HttpError, BadCursor) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        body = {
            "active_stories": len(model),
            "stories": page.stories,
            "next_cursor": page.next_cursor,
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/stories", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        info = {
            "events": applied,
            "stories": len(model),
            "seconds": took,
            "peak_rss_mib": peak_mib,
            "rss_mib": held_mib,
            "common_word": top["headline"].split()[0],
        }
        print("ready " + json.dumps(info), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[94], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve(args.stories, args.serve)
        return

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--stories", str(args.stories), "--serve", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("ready "), f"the server did not start: {line!r}"
        info = json.loads(line[len("ready ") :])
        print(
            f"fed {info['events']} story events into {info['stories']} stories in "
            f"{info['seconds']:.1f} s ({info['events'] / info['seconds']:,.0f} events/s); "
            f"server RSS {info['rss_mib']:.0f} MiB after loading "
            f"(peak {info['peak_rss_mib']:.0f} MiB while generating)"
        )
        run_queries(f"http://127.0.0.1:{port}/api/stories", info["common_word"], args.requests)
    finally:
        server.terminate()
        server.wait()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")


def run_queries(base: str, common: str, requests: int) -> None:
    queries: dict[str, dict[str, Any]] = {
        "default (growth), limit 50": {},
        "sort=size": {"sort": "size"},
        "sort=recent, 2nd page (cursor)": {"sort": "recent"},
        "sort=size, limit=1000": {"sort": "size", "limit": 1000},
        f"q={common} (common word)": {"q": common},
        "q=w4321 (rare word)": {"q": "w4321"},
        "source=source-7": {"source": "source-7"},
        "min_size=5": {"min_size": 5},
        "min_size=50 (few stories)": {"min_size": 50},
        f"q={common}&source=source-7&min_size=2": {
            "q": common,
            "source": "source-7",
            "min_size": 2,
        },
    }
    with httpx.Client(timeout=30) as client:
        page_one = client.get(base, params={"sort": "recent"}).json()
        assert page_one["stories"], "no stories served"
        queries["sort=recent, 2nd page (cursor)"]["cursor"] = page_one["next_cursor"]
        print(f"{'query':45} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'stories':>8}")
        for name, params in queries.items():
            for _ in range(20):
                client.get(base, params=params)
            samples = []
            served = 0
            for _ in range(requests):
                t = time.perf_counter()
                response = client.get(base, params=params)
                samples.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.text
                served = len(response.json()["stories"])
            p50, p95, p99 = percentiles(samples)
            print(f"{name:45} {p50:8.2f} {p95:8.2f} {p99:8.2f} {served:8d}")


if __name__ == "__main__":
    main()
