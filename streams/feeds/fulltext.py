"""Full text for teasers: fetch the article page (same guard and politeness as feeds,
robots.txt respected), take its main text with trafilatura (navigation, share buttons,
"Read More", like counters and cookie banners go), keep its <link rel=canonical>, and date it
with htmldate when the feed did not.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import urllib.robotparser
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import trafilatura
from htmldate import find_date

from streams.feeds.errors import FeedError, InvalidFeedUrl
from streams.feeds.fetcher import PageFetcher, StatusError
from streams.feeds.metrics import FeedMetrics
from streams.feeds.urls import article_id, canonical_url

__all__ = ["FullText", "PageText", "extract_page"]

logger = logging.getLogger(__name__)

# Why 1 day: robots.txt changes rarely; Google caches it up to a day too.
_ROBOTS_TTL_S = 86400.0
# Why 512 KiB: a robots.txt past this is not one (Google reads only the first 500 KiB).
_ROBOTS_MAX_BYTES = 512 * 1024
_HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
# Lines trafilatura keeps at times around a syndicated body: a "Read More" link, like/dislike
# counters, share prompts, cookie notices. Only short lines are tested (why 80 chars: such
# widgets are a few words; a paragraph that happens to say "read more" is kept).
_JUNK_LINE = re.compile(
    r"^[\W\d_]*(read more|continue reading|weiterlesen|lire la suite|leer más|"
    r"\d*\s*i (don'?t )?like it|share( this| on \w+)?|email this|print|"
    r"(we use|this site uses) cookies|accept( all)? cookies)\b.*$",
    re.IGNORECASE,
)
_JUNK_MAX_CHARS = 80


@dataclass(frozen=True, slots=True)
class PageText:
    text: str
    canonical: str | None
    published_at: str | None


def _canonical_link(tree: Any, page_url: str) -> str | None:
    for href in tree.xpath("//link[@rel='canonical']/@href"):
        try:
            found = canonical_url(urljoin(page_url, str(href)))
        except InvalidFeedUrl:
            continue
        # Only a canonical on the page's own host: a page must not claim another site's
        # article (its id would then suppress that article as a duplicate).
        if urlsplit(found).hostname == urlsplit(canonical_url(page_url)).hostname:
            return found
    return None


def _without_junk(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    kept = [
        line
        for line in lines
        if line and not (len(line) <= _JUNK_MAX_CHARS and _JUNK_LINE.match(line))
    ]
    return " ".join(kept)


def extract_page(html: bytes | str, url: str) -> PageText:
    """Main text, canonical URL (same host only) and date (htmldate) of an article page."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return PageText("", None, None)
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        with_metadata=False,
    )
    text = ""
    if doc is not None:
        raw = doc.get("text") if isinstance(doc, dict) else getattr(doc, "text", None)
        text = _without_junk(raw or "")
    published = None
    try:
        found = find_date(tree, extensive_search=False, outputformat="%Y-%m-%dT%H:%M:%S")
    except (ValueError, TypeError):
        found = None
    if found:
        published = found + "Z" if "T" in found else found + "T00:00:00Z"
    return PageText(text, _canonical_link(tree, url), published)


class FullText:
    """Replaces a teaser with its page's main text (never fails the feed: a page that cannot be
    fetched or read leaves the teaser as it was, counted in storywatch_feed_pages_total)."""

    def __init__(self, fetcher: PageFetcher, metrics: FeedMetrics, teaser_chars: int) -> None:
        self.fetcher = fetcher
        self.metrics = metrics
        self.teaser_chars = teaser_chars
        self._robots: dict[str, tuple[float, urllib.robotparser.RobotFileParser]] = {}

    async def enrich(self, article: dict[str, Any]) -> dict[str, Any]:
        if self.teaser_chars <= 0 or len(article.get("text") or "") >= self.teaser_chars:
            return article
        url = str(article["url"])
        try:
            if not await self.allowed(url):
                self.metrics.pages.labels("refused_robots").inc()
                return article
            result = await self.fetcher.fetch(url, accept=_HTML_ACCEPT)
        except FeedError as exc:
            logger.info("page %s: %s", url, exc)
            self.metrics.pages.labels("error").inc()
            return article
        if result.body is None:
            return article
        page = await asyncio.to_thread(extract_page, result.body, result.url)
        self.metrics.pages.labels("ok").inc()
        enriched = dict(article)
        text = page.text
        title = str(article.get("title") or "")
        if title and text.startswith(title):
            text = text[len(title) :].lstrip()  # the page's own headline, already the title
        if len(text) > len(article.get("text") or ""):
            enriched["text"] = text
        if page.canonical and page.canonical != url:
            enriched["url"] = page.canonical
            enriched["id"] = article_id(page.canonical)
        if not enriched.get("published_at") and page.published_at:
            enriched["published_at"] = page.published_at
        return enriched

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt of ``url``'s site lets our User-Agent fetch it."""
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        cached = self._robots.get(site)
        now = time.time()
        if cached is None or cached[0] < now - _ROBOTS_TTL_S:
            cached = (now, await self._read_robots(site))
            self._robots[site] = cached
        return cached[1].can_fetch(self.fetcher.policy.user_agent, url)

    async def _read_robots(self, site: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser()
        try:
            result = await self.fetcher.fetch(f"{site}/robots.txt", accept="text/plain")
        except StatusError as exc:
            # RFC 9309: no robots.txt (4xx) allows everything; 5xx is "disallow for now".
            parser.parse([] if exc.status < 500 else ["User-agent: *", "Disallow: /"])
            return parser
        except FeedError:
            parser.parse(["User-agent: *", "Disallow: /"])  # unreachable: do not crawl
            return parser
        body = (result.body or b"")[:_ROBOTS_MAX_BYTES]
        parser.parse(body.decode("utf-8", errors="replace").splitlines())
        return parser
