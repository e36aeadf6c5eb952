"""Feeds as data: a feed record, its id, and the feed lists an operator imports (OPML 2.0 or
one URL a line). Pure: no I/O beyond the bytes it is given."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from streams.feeds.errors import FeedListError, InvalidFeedUrl
from streams.feeds.urls import canonical_url

__all__ = ["FeedDef", "feed_id", "parse_feed_list"]

# Why 16 hex chars (64 bits): short enough to type in `storywatch feeds rm ID`, and a
# collision among even a million feeds has odds of about 1 in 30 million.
_FEED_ID_HEX = 16
# Why 10 s: below it a feed is hammered for nothing (feeds change every few minutes).
MIN_INTERVAL_S = 10.0
_NAME_MAX_CHARS = 512


def feed_id(url: str) -> str:
    """A feed's id: a hash of its canonical URL (the same feed added twice is one feed)."""
    return hashlib.sha256(canonical_url(url).encode()).hexdigest()[:_FEED_ID_HEX]


@dataclass(frozen=True, slots=True)
class FeedDef:
    """A feed as stored on the ``feeds`` topic (keyed by ``id``)."""

    id: str
    url: str
    name: str | None = None
    interval_s: float | None = None  # None: STORYWATCH_FEED_POLL_S
    added_at: float = 0.0

    @classmethod
    def new(cls, url: str, *, name: str | None = None, interval_s: float | None = None) -> FeedDef:
        canonical = canonical_url(url)  # raises InvalidFeedUrl with a hint
        if interval_s is not None and interval_s < MIN_INTERVAL_S:
            raise InvalidFeedUrl(
                f"--interval {interval_s:g} is below {MIN_INTERVAL_S:g} s; give a longer interval "
                "(or none: STORYWATCH_FEED_POLL_S)"
            )
        clean = " ".join((name or "").split())[:_NAME_MAX_CHARS] or None
        return cls(feed_id(canonical), canonical, clean, interval_s, time.time())

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FeedDef:
        interval = record.get("interval_s")
        return cls(
            id=str(record["id"]),
            url=str(record["url"]),
            name=record.get("name") if isinstance(record.get("name"), str) else None,
            interval_s=float(interval) if isinstance(interval, int | float) else None,
            added_at=float(record.get("added_at") or 0.0),
        )


def parse_feed_list(data: bytes, *, source: str = "the file") -> list[FeedDef]:
    """The feeds of an OPML 2.0 document (every outline with an xmlUrl, nested or not) or of
    a text file of one URL a line (blank lines and # comments skipped). Raises FeedListError
    naming the line or outline that is wrong; a feed listed twice is kept once."""
    text_start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:100].lower()
    if text_start.startswith((b"<?xml", b"<opml")):
        feeds = _opml(data, source)
    else:
        feeds = _lines(data, source)
    unique = {f.id: f for f in reversed(feeds)}  # the first mention wins
    return [f for f in feeds if unique.get(f.id) is f]


def _opml(data: bytes, source: str) -> list[FeedDef]:
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True)
    except DefusedXmlException as exc:
        raise FeedListError(f"{source} declares XML entities ({exc}); remove them") from None
    except SafeET.ParseError as exc:
        raise FeedListError(
            f"{source} is not well-formed OPML ({exc}); fix or re-export it"
        ) from None
    if root.tag != "opml":
        raise FeedListError(f"{source} is XML but not OPML (root <{root.tag}>); export OPML")
    feeds = []
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl")
        if not url:
            continue  # a folder
        name = outline.get("title") or outline.get("text")
        try:
            feeds.append(FeedDef.new(url, name=name))
        except InvalidFeedUrl as exc:
            raise FeedListError(f"{source}: outline {name or url!r}: {exc}") from None
    if not feeds:
        raise FeedListError(f"{source} has no <outline xmlUrl=...>: no feed to import")
    return feeds


def _lines(data: bytes, source: str) -> list[FeedDef]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedListError(f"{source} is not UTF-8 text ({exc}); save it as UTF-8") from None
    feeds = []
    for number, line in enumerate(text.splitlines(), 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        try:
            feeds.append(FeedDef.new(url))
        except InvalidFeedUrl as exc:
            raise FeedListError(f"{source}, line {number}: {exc}") from None
    if not feeds:
        raise FeedListError(f"{source} lists no URL: give OPML or one feed URL a line")
    return feeds
