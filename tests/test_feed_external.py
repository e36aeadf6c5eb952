"""Feed files and article pages nobody here wrote (tests/data/external/README.md), served by a
local HTTP server and read the way the worker reads them. Prints the measured rates; the
floors asserted are the rates measured when this test was written (docs/FEEDS.md)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import feedparser
import pytest

from streams.feeds.errors import FeedParseError, InvalidFeedUrl
from streams.feeds.fetcher import FetchPolicy, PageFetcher, feed_guard
from streams.feeds.fulltext import extract_page
from streams.feeds.parsing import item_to_article, parse_feed
from tests.feed_server import FeedServer

EXTERNAL = Path(__file__).resolve().parent / "data" / "external"
POLICY = FetchPolicy(user_agent="test", read_timeout_s=5, host_delay_s=0)
_EXPECT = re.compile(r"Expect:\s*(.*)")


@pytest.fixture
async def served() -> AsyncIterator[tuple[FeedServer, PageFetcher]]:
    srv = await FeedServer(EXTERNAL).start()
    async with PageFetcher(POLICY, feed_guard(frozenset({"127.0.0.1"}))) as fetcher:
        yield srv, fetcher
    await srv.stop()


async def test_feedparser_suite_files(served: tuple[FeedServer, PageFetcher]) -> None:
    srv, fetcher = served
    files = sorted((EXTERNAL / "feedparser").rglob("*.xml"))
    assert len(files) > 400
    parsed = refused = items = articles = eligible = 0
    not_feeds: list[str] = []
    for path in files:
        rel = path.relative_to(EXTERNAL).as_posix()
        result = await fetcher.fetch(f"{srv.base}/feeds/{rel}")
        assert result.body is not None
        try:
            feed = parse_feed(result.body, url=result.url, content_type=result.content_type)
        except FeedParseError:
            refused += 1
            not_feeds.append(rel)
            continue
        parsed += 1
        eligible += _eligible(result.body)
        for item in feed.items:
            items += 1
            try:
                item_to_article(item, feed_id="f", feed_title=feed.title, feed_url=result.url)
                articles += 1
            except (InvalidFeedUrl, FeedParseError):
                pass  # the file tests another feature: its item has no link or no text
    rate = parsed / len(files)
    print(
        f"\nfeedparser suite: {len(files)} files, {parsed} read as feeds ({rate:.1%}), "
        f"{refused} refused as no feed; {items} items, of which {eligible} carry a link and a "
        f"title or text by feedparser's own reading: {articles} became articles"
    )
    print("refused:", not_feeds)
    assert rate >= 0.99
    assert articles == eligible  # every item that can be an article is one


def _eligible(body: bytes) -> int:
    """Items with an http(s) link (or guid) and a title, summary or content, per feedparser."""
    count = 0
    for entry in feedparser.parse(body).entries:
        link = entry.get("link") or entry.get("id") or ""
        text = entry.get("title") or entry.get("summary") or entry.get("content")
        if str(link).startswith(("http://", "https://", "/")) and text:
            count += 1
    return count


async def test_trafilatura_eval_pages(served: tuple[FeedServer, PageFetcher]) -> None:
    srv, fetcher = served
    cases = json.loads((EXTERNAL / "trafilatura" / "evaldata.json").read_text())
    with_found = with_total = without_clean = without_total = 0
    pages_all_right = 0
    for url, case in cases.items():
        result = await fetcher.fetch(
            f"{srv.base}/feeds/trafilatura/pages/{case['file']}", accept="text/html"
        )
        assert result.body is not None
        page = extract_page(result.body, url)
        text = page.text
        found = sum(1 for snippet in case["with"] if " ".join(snippet.split()) in text)
        clean = sum(1 for snippet in case["without"] if " ".join(snippet.split()) not in text)
        with_found += found
        with_total += len(case["with"])
        without_clean += clean
        without_total += len(case["without"])
        pages_all_right += found == len(case["with"]) and clean == len(case["without"])
    print(
        f"\ntrafilatura eval ({len(cases)} pages): expected text found {with_found}/{with_total} "
        f"({with_found / with_total:.1%}), boilerplate kept out {without_clean}/{without_total} "
        f"({without_clean / without_total:.1%}), pages entirely right {pages_all_right}"
    )
    assert with_found / with_total >= 0.80
    assert without_clean / without_total >= 0.90
