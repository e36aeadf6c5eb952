"""A fetched feed body -> feed items -> article records.

RSS 0.9x/1.0/2.0 and Atom go through feedparser (its SAX parser never expands entity
declarations, so an entity bomb costs nothing: tests/unit/test_feed_parsing.py); JSON Feed 1.0/1.1
is read here. Dates become UTC ISO 8601, HTML becomes plain text, and each item gets the
article record shape of the ``articles`` topic plus ``feed_id``.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import lxml.etree
import lxml.html

from streams.feeds.errors import FeedParseError, InvalidFeedUrl
from streams.feeds.language import LanguageDetector, primary_tag
from streams.feeds.urls import article_id, canonical_url
from streams.time_ranges import iso_time

__all__ = ["FeedItem", "ParsedFeed", "item_to_article", "parse_feed", "plain_text"]

_JSON_FEED_PREFIX = "https://jsonfeed.org/version/"
# Why 512: the article topic's bound on source names (streams/engine/validation.py).
_SOURCE_MAX_CHARS = 512


@dataclass(frozen=True, slots=True)
class FeedItem:
    url: str | None
    title: str
    text: str
    published_at: str | None
    lang: str | None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    lang: str | None
    ttl_s: float | None  # RSS <ttl> (minutes in the feed), in seconds
    items: list[FeedItem] = field(default_factory=list)
    format: str = ""


def _struct_iso(value: time.struct_time | None) -> str | None:
    if value is None:
        return None
    try:
        return iso_time(calendar.timegm(value), precision="s")
    except (OverflowError, ValueError, OSError):
        return None


def _rfc3339_iso(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return iso_time(datetime.fromisoformat(value.strip()), precision="s")
    except ValueError:
        return None


def plain_text(html: str) -> str:
    """The text of an HTML fragment, whitespace collapsed; plain text comes back as it is."""
    if "<" not in html and "&" not in html:
        return " ".join(html.split())
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return " ".join(html.split())
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    return " ".join(str(root.text_content()).split())


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed body fetched from ``url``; raises FeedParseError when it is no feed."""
    if _looks_like_json(body):
        return _parse_json_feed(body, url)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(
        body, response_headers=headers, sanitize_html=True, resolve_relative_uris=True
    )
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise FeedParseError(
            f"{url} is not an RSS, Atom or JSON feed ({reason or 'no feed element'}); "
            "check the URL (a page is not its feed: look for <link rel=alternate> on it)"
        )
    feed = parsed.feed
    feed_lang = primary_tag(feed.get("language"))
    items = [_rss_item(entry, url, feed_lang) for entry in parsed.entries]
    ttl = feed.get("ttl")
    ttl_s = float(ttl) * 60.0 if isinstance(ttl, str) and ttl.strip().isdigit() else None
    title = plain_text(feed.get("title") or "") or None
    return ParsedFeed(title, feed_lang, ttl_s, items, parsed.get("version") or "unknown")


def _rss_item(entry: Any, feed_url: str, feed_lang: str | None) -> FeedItem:
    link = entry.get("link") or None
    if link is None:
        guid = entry.get("id")
        if isinstance(guid, str) and guid.startswith(("http://", "https://")):
            link = guid
    content = entry.get("content") or []
    body = max((c.get("value") or "" for c in content), key=len, default="")
    summary = entry.get("summary") or ""
    text = plain_text(body if len(body) > len(summary) else summary)
    when = _struct_iso(entry.get("published_parsed") or entry.get("updated_parsed"))
    title_detail = entry.get("title_detail") or {}
    lang = primary_tag(title_detail.get("language")) or feed_lang
    return FeedItem(
        url=urljoin(feed_url, link) if link else None,
        title=plain_text(entry.get("title") or ""),
        text=text,
        published_at=when,
        lang=lang,
    )


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FeedParseError(f"{url} looks like JSON but is not readable ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_JSON_FEED_PREFIX):
        raise FeedParseError(
            f"{url} is JSON but not a JSON Feed (no version {_JSON_FEED_PREFIX}1.1); check the URL"
        )
    feed_lang = primary_tag(doc.get("language") if isinstance(doc.get("language"), str) else None)
    raw_items = doc.get("items")
    items = []
    for raw in raw_items if isinstance(raw_items, list) else []:
        if not isinstance(raw, dict):
            continue
        link = raw.get("url") or raw.get("external_url")
        html = _string(raw, "content_html")
        text = _string(raw, "content_text")
        summary = _string(raw, "summary")
        item_lang = raw.get("language") if isinstance(raw.get("language"), str) else None
        items.append(
            FeedItem(
                url=urljoin(url, link) if isinstance(link, str) and link else None,
                title=plain_text(_string(raw, "title")),
                text=" ".join(text.split()) or plain_text(html) or plain_text(summary),
                published_at=_rfc3339_iso(raw.get("date_published"))
                or _rfc3339_iso(raw.get("date_modified")),
                lang=primary_tag(item_lang) or feed_lang,
            )
        )
    title = doc.get("title") if isinstance(doc.get("title"), str) else None
    return ParsedFeed(title, feed_lang, None, items, "json1")


def item_to_article(
    item: FeedItem,
    *,
    feed_id: str,
    feed_title: str | None,
    feed_url: str,
    detector: LanguageDetector | None = None,
) -> dict[str, Any]:
    """The ``articles`` record of ``item``; raises InvalidFeedUrl without a usable link."""
    if not item.url:
        raise InvalidFeedUrl("the item has no link; an article needs one (its id is its URL)")
    url = canonical_url(item.url)
    if not item.title and not item.text:
        raise FeedParseError(f"the item {url} has neither title nor text")
    lang = item.lang
    if lang is None and detector is not None:
        lang = detector.detect(f"{item.title}. {item.text}")
    source = feed_title or urlsplit(feed_url).hostname or feed_url
    return {
        "id": article_id(url),
        "title": item.title,
        "text": item.text,
        "source": source[:_SOURCE_MAX_CHARS],
        "url": url,
        "published_at": item.published_at,
        "lang": lang,
        "feed_id": feed_id,
    }
