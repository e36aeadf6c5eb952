"""The feed fetcher against a real local HTTP server on 127.0.0.1 (allowed explicitly, as
STORYWATCH_FEED_ALLOW_HOSTS would): conditional GETs, gzip, redirects through the SSRF guard,
size and time caps, HTTP errors, one request at a time per host."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from streams.feeds.errors import (
    FeedGone,
    FeedParseError,
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
)
from streams.feeds.fetcher import (
    FetchPolicy,
    PageFetcher,
    StatusError,
    Validators,
    feed_guard,
    outcome_of,
    parse_max_age,
)
from streams.feeds.parsing import parse_feed
from streams.feeds.schedule import MAX_BACKOFF_S, next_delay
from tests.feed_server import FeedServer, stall, stream_bytes

POLICY = FetchPolicy(
    user_agent="Storywatch-Feeds/1.0 (+mailto:ops@example.org)",
    max_bytes=10_000_000,
    connect_timeout_s=2.0,
    read_timeout_s=0.5,
    total_timeout_s=5.0,
    host_delay_s=0.2,
)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = await FeedServer().start()
    yield srv
    await srv.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[PageFetcher]:
    async with PageFetcher(POLICY, feed_guard(frozenset({"127.0.0.1"}))) as f:
        yield f


async def test_conditional_get_turns_into_304(server: FeedServer, fetcher: PageFetcher) -> None:
    url = f"{server.base}/feeds/rss2.xml"
    first = await fetcher.fetch(url)
    assert first.status == 200 and first.body and b"Harbour Gazette" in first.body
    assert first.validators.etag and first.validators.last_modified
    second = await fetcher.fetch(url, first.validators)
    assert second.not_modified and second.body is None
    assert second.validators == first.validators
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == first.validators.etag
    assert sent["If-Modified-Since"] == first.validators.last_modified
    assert sent["User-Agent"] == POLICY.user_agent
    assert outcome_of(None, second) == "not_modified"
    assert outcome_of(None, first) == "ok"


async def test_gzip_is_asked_for_and_inflated(server: FeedServer, fetcher: PageFetcher) -> None:
    result = await fetcher.fetch(f"{server.base}/feeds/atom.xml")
    assert "gzip" in server.requests[-1][1]["Accept-Encoding"]
    assert result.body is not None and result.body.startswith(b"<?xml")
    assert parse_feed(result.body, url=result.url).items[0].lang == "de"


async def test_redirects_are_followed_up_to_five(server: FeedServer, fetcher: PageFetcher) -> None:
    for i in range(7):
        server.route(f"/r{i}", _redirect(f"/r{i + 1}" if i < 6 else "/feeds/rss2.xml"))
    result = await fetcher.fetch(f"{server.base}/r2")  # r2..r6: 5 hops
    assert result.status == 200 and result.redirects == 5
    assert result.url.endswith("/feeds/rss2.xml")
    with pytest.raises(FetchError, match="redirected more than 5 times"):
        await fetcher.fetch(f"{server.base}/r0")


async def test_every_redirect_hop_passes_the_guard(
    server: FeedServer, fetcher: PageFetcher
) -> None:
    server.route("/to-private", _redirect("http://10.1.2.3/feed"))
    server.route("/to-v6-loopback", _redirect(f"http://[::1]:{server.port}/feeds/rss2.xml"))
    for path in ("/to-private", "/to-v6-loopback"):
        with pytest.raises(FetchRefused, match="STORYWATCH_FEED_ALLOW_HOSTS") as caught:
            await fetcher.fetch(f"{server.base}{path}")
        assert outcome_of(caught.value) == "refused"
    assert server.hits("/feed") == 0


async def test_loopback_refused_unless_allowed(server: FeedServer) -> None:
    async with PageFetcher(POLICY, feed_guard(frozenset())) as strict:
        with pytest.raises(FetchRefused, match=r"loopback.*STORYWATCH_FEED_ALLOW_HOSTS"):
            await strict.fetch(f"{server.base}/feeds/rss2.xml")
        with pytest.raises(FetchRefused, match="STORYWATCH_FEED_ALLOW_HOSTS"):
            await strict.fetch(f"http://localhost:{server.port}/feeds/rss2.xml")
    assert server.requests == []


@pytest.mark.parametrize("declare", [True, False])
async def test_a_30_mb_body_stops_at_the_cap(
    server: FeedServer, fetcher: PageFetcher, declare: bool
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        return await stream_bytes(request, 30 * 1024 * 1024, declare=declare)

    server.route("/big", big)
    started = time.monotonic()
    with pytest.raises(FetchTooLarge, match="STORYWATCH_FEED_MAX_BYTES") as caught:
        await fetcher.fetch(f"{server.base}/big")
    assert outcome_of(caught.value) == "too_large"
    assert time.monotonic() - started < 5.0
    await asyncio.sleep(0.2)
    assert "/big" not in server.completed  # the server could not send it all: the read stopped


async def test_a_gzip_bomb_stops_at_the_cap(server: FeedServer, fetcher: PageFetcher) -> None:
    bomb = gzip.compress(b"\0" * (30 * 1024 * 1024))  # 30 KB that inflate to 30 MB

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/xml"}
        )

    server.route("/bomb.gz", handler)
    with pytest.raises(FetchTooLarge):
        await fetcher.fetch(f"{server.base}/bomb.gz")


async def test_a_stalling_server_times_out(server: FeedServer, fetcher: PageFetcher) -> None:
    async def stall_3s(request: web.Request) -> web.StreamResponse:
        return await stall(request, 3.0)

    server.route("/stall", stall_3s)
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="timeouts") as caught:
        await fetcher.fetch(f"{server.base}/stall")
    assert outcome_of(caught.value) == "timeout"
    assert time.monotonic() - started < 3.0  # read timeout 0.5 s, not the 30 s stall


async def test_http_errors(server: FeedServer, fetcher: PageFetcher) -> None:
    server.route("/gone", _status(410))
    server.route("/busy", _status(429, {"Retry-After": "120"}))
    server.route("/down", _status(503))
    with pytest.raises(FeedGone, match="410"):
        await fetcher.fetch(f"{server.base}/gone")
    with pytest.raises(StatusError) as busy:
        await fetcher.fetch(f"{server.base}/busy")
    assert busy.value.status == 429 and busy.value.retry_after_s == 120.0
    with pytest.raises(StatusError) as down:
        await fetcher.fetch(f"{server.base}/down")
    assert down.value.status == 503 and down.value.retry_after_s is None
    with pytest.raises(StatusError, match="HTTP 404") as missing:
        await fetcher.fetch(f"{server.base}/feeds/no-such-feed.xml")
    assert outcome_of(missing.value) == "error"


async def test_html_and_invalid_utf8_bodies(server: FeedServer, fetcher: PageFetcher) -> None:
    page = await fetcher.fetch(f"{server.base}/feeds/page.html")
    assert page.body is not None
    with pytest.raises(FeedParseError, match="not an RSS, Atom or JSON feed"):
        parse_feed(page.body, url=page.url, content_type=page.content_type)
    latin = await fetcher.fetch(f"{server.base}/feeds/bad-utf8.xml")
    assert latin.body is not None
    assert parse_feed(latin.body, url=latin.url).items[0].url == "http://127.0.0.1/cafe"


async def test_one_request_at_a_time_per_host_with_a_delay(
    server: FeedServer, fetcher: PageFetcher
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.1)
        return web.Response(body=(server.data / "rss2.xml").read_bytes())

    server.route("/slow", slow)
    await asyncio.gather(*(fetcher.fetch(f"{server.base}/slow") for _ in range(4)))
    assert server.max_active == 1
    spans = sorted(server.intervals)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert min(gaps) >= POLICY.host_delay_s * 0.9


def test_next_delay_respects_the_server() -> None:
    assert next_delay(300) == 300
    assert next_delay(300, retry_after_s=900) == 900
    assert next_delay(300, max_age_s=600, ttl_s=1800) == 1800
    assert next_delay(300, failures=1) == 600
    assert next_delay(300, failures=30) == 300 * 64
    assert next_delay(600, failures=30) == MAX_BACKOFF_S
    assert next_delay(300, failures=30, retry_after_s=86400) == 86400


def test_parse_max_age() -> None:
    assert parse_max_age("public, max-age=600") == 600
    assert parse_max_age("s-maxage=60") == 60
    assert parse_max_age("no-cache") is None
    assert parse_max_age(None) is None
    assert Validators("x", None).headers() == {"If-None-Match": "x"}


def _redirect(location: str, status: int = 302) -> object:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handler


def _status(status: int, headers: dict[str, str] | None = None) -> object:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers or {}, text="nope")

    return handler
