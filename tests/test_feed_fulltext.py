"""Full text of teasers over a local HTTP server: main text without boilerplate, the page's
canonical link, htmldate's date, robots.txt respected, a broken page leaves the teaser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.fulltext import FullText, extract_page
from streams.feeds.metrics import FeedMetrics
from streams.feeds.urls import article_id
from tests.feed_server import FeedServer

PAGES = Path(__file__).resolve().parent / "data" / "pages"
POLICY = FetchPolicy(user_agent="Storywatch-Feeds/1.0", read_timeout_s=2, host_delay_s=0)


def test_boilerplate_goes_the_body_stays() -> None:
    html = (PAGES / "syndicated.html").read_text().replace("PORT", "8080")
    page = extract_page(html, "http://127.0.0.1:8080/agg/port-strike")
    assert "Dock workers walked out on Monday" in page.text
    assert "enough stock for about a week" in page.text
    for junk in (
        "Read More",
        "I like it",
        "Share on",
        "cookies",
        "Related stories",
        "Contact us",
        "All rights reserved",
    ):
        assert junk not in page.text, junk
    assert page.canonical == "http://127.0.0.1:8080/news/port-strike"
    assert page.published_at == "2026-12-07T08:30:00Z"


def test_a_canonical_on_another_host_is_ignored() -> None:
    html = (PAGES / "syndicated.html").read_text().replace("127.0.0.1:PORT", "victim.example")
    assert extract_page(html, "http://127.0.0.1:8080/agg/x").canonical is None


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = await FeedServer().start()
    page = (PAGES / "syndicated.html").read_text().replace("PORT", str(srv.port))

    async def article(request: web.Request) -> web.StreamResponse:
        return web.Response(text=page, content_type="text/html")

    async def robots(request: web.Request) -> web.StreamResponse:
        return web.Response(text="User-agent: *\nDisallow: /private/\n")

    srv.route("/agg/port-strike", article)
    srv.route("/private/secret", article)
    srv.route("/robots.txt", robots)
    yield srv
    await srv.stop()


@pytest.fixture
async def fulltext() -> AsyncIterator[tuple[FullText, CollectorRegistry]]:
    registry = CollectorRegistry()
    async with PageFetcher(POLICY, feed_guard(frozenset({"127.0.0.1"}))) as fetcher:
        yield FullText(fetcher, FeedMetrics(registry), teaser_chars=400), registry


def _teaser(url: str) -> dict:
    return {
        "id": article_id(url),
        "title": "Port strike halts container traffic",
        "text": "Dock workers walked out.",
        "url": url,
        "published_at": None,
    }


async def test_a_teaser_gets_its_page_text_canonical_and_date(
    server: FeedServer, fulltext: tuple[FullText, CollectorRegistry]
) -> None:
    full, registry = fulltext
    enriched = await full.enrich(_teaser(f"{server.base}/agg/port-strike"))
    assert enriched["text"].startswith("Dock workers walked out on Monday after talks")
    assert "Read More" not in enriched["text"]
    assert enriched["url"] == f"{server.base}/news/port-strike"
    assert enriched["id"] == article_id(f"{server.base}/news/port-strike")
    assert enriched["published_at"] == "2026-12-07T08:30:00Z"
    assert server.hits("/robots.txt") == 1
    assert registry.get_sample_value("storywatch_feed_pages_total", {"outcome": "ok"}) == 1


async def test_robots_txt_is_respected(
    server: FeedServer, fulltext: tuple[FullText, CollectorRegistry]
) -> None:
    full, registry = fulltext
    teaser = _teaser(f"{server.base}/private/secret")
    assert await full.enrich(teaser) == teaser
    assert server.hits("/private/secret") == 0
    assert (
        registry.get_sample_value("storywatch_feed_pages_total", {"outcome": "refused_robots"}) == 1
    )


async def test_long_items_and_broken_pages_keep_their_text(
    server: FeedServer, fulltext: tuple[FullText, CollectorRegistry]
) -> None:
    full, registry = fulltext
    long_item = {**_teaser(f"{server.base}/agg/port-strike"), "text": "x " * 300}
    assert await full.enrich(long_item) == long_item
    missing = _teaser(f"{server.base}/agg/missing")
    assert await full.enrich(missing) == missing
    assert registry.get_sample_value("storywatch_feed_pages_total", {"outcome": "error"}) == 1
