"""Canonical article URLs and the article id made from them.

One article reaches us under many URLs: another feed's link, a redirecting mirror, a
``?utm_source=`` variant. courlan normalises the URL (scheme and host lowercased, default port
dropped, punycode decoded, query sorted, tracking parameters such as ``utm_*``, ``fbclid``,
``gclid``, ``mc_cid`` dropped); we also drop the fragment. The article id is a hash of that
canonical URL, so every variant of one article has one id.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

from courlan import normalize_url

from streams.feeds.errors import InvalidFeedUrl

__all__ = ["article_id", "canonical_url"]

_SCHEMES = ("http", "https")
# Why 32 hex chars (128 bits): collisions among even billions of URLs are out of reach, and the
# id stays short in keys, logs and the seen-URL table.
_ID_HEX_CHARS = 32


def canonical_url(url: str) -> str:
    """``url`` in canonical form; raises InvalidFeedUrl unless it is an absolute http(s) URL."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidFeedUrl(f"URL {url!r} cannot be parsed ({exc}); give an http(s) URL") from None
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise InvalidFeedUrl(
            f"URL {url!r} is not an absolute http(s) URL with a host; give one such as "
            "https://example.com/news/1"
        )
    try:
        normal = normalize_url(urlunsplit(parts._replace(fragment="")), strict=False)
    except ValueError as exc:
        raise InvalidFeedUrl(f"URL {url!r} cannot be normalised ({exc}); check it") from None
    # A second pass: courlan's output is sometimes normalised a little further by itself
    # (a query emptied by dropped trackers), so the canonical form is a fixed point.
    again = normalize_url(normal, strict=False)
    return urlunsplit(urlsplit(again)._replace(fragment=""))


def article_id(url: str) -> str:
    """The article id of ``url``: a hash of its canonical form."""
    digest = hashlib.sha256(canonical_url(url).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:_ID_HEX_CHARS]
