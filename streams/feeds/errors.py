"""Errors of feed ingestion: each message says what to do next."""

from __future__ import annotations

from config.exceptions import StorywatchError

__all__ = [
    "FeedError",
    "FeedGone",
    "FeedListError",
    "FeedParseError",
    "FetchError",
    "FetchRefused",
    "FetchTimeout",
    "FetchTooLarge",
    "InvalidFeedUrl",
]


class FeedError(StorywatchError):
    """A feed cannot be added, fetched or read."""


class InvalidFeedUrl(FeedError, ValueError):
    """A feed or article URL is not an absolute http(s) URL with a host."""


class FeedListError(FeedError, ValueError):
    """A feed list (OPML or one URL a line) cannot be read."""


class FetchError(FeedError):
    """A fetch failed: the server answered an error, or the connection broke."""


class FetchRefused(FetchError):
    """The SSRF guard refused the address (or a redirect's address), or robots.txt did."""


class FetchTooLarge(FetchError):
    """The body passed STORYWATCH_FEED_MAX_BYTES; the read was stopped there."""


class FetchTimeout(FetchError):
    """Connecting or reading took longer than the feed timeouts."""


class FeedGone(FetchError):
    """The server answered 410 Gone: the feed is retired."""


class FeedParseError(FeedError):
    """The body is not a feed (HTML, an unreadable document)."""
