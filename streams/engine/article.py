"""The article data contract of the engine (no Faust, no Kafka)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

__all__ = ["Article", "content_key", "normalize_text", "stable_id"]

_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]")


def normalize_text(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form of ``text``."""
    folded = text.casefold()
    if not folded.isascii():  # accents only exist outside ASCII: skip the per-char pass
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACE.sub(" ", _NON_WORD.sub(" ", folded)).strip()


def stable_id(prefix: str, key: str) -> str:
    """A short id derived from ``key``: replays of the same input give the same id."""
    return f"{prefix}-{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]}"


def content_key(title: str, text: str) -> str:
    """Identifies an exact re-send: the same normalized title and text."""
    return stable_id("c", normalize_text(title) + "\n" + normalize_text(text))


@dataclass(frozen=True, slots=True)
class Article:
    """One valid news article, as accepted from the ``articles`` topic or a JSONL file."""

    id: str
    title: str
    text: str = ""
    source: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    lang: str | None = None
    # The title and text's UTF-8 size before they were cut to the size budget (None: whole).
    truncated_from: int | None = None

    def embed_text(self, max_chars: int) -> str:
        """Title and body as the model reads them, cut at ``max_chars``."""
        body = f"{self.title}. {self.text}" if self.text else self.title
        return body[:max_chars]

    @property
    def content_key(self) -> str:
        """Identifies an exact re-send: the same normalized title and text."""
        return content_key(self.title, self.text)

    @property
    def source_name(self) -> str:
        """The outlet: ``source`` if given, else the URL's host, else ``unknown``."""
        if self.source:
            return self.source
        if self.url:
            host = urlsplit(self.url).hostname or ""
            return host.removeprefix("www.") or "unknown"
        return "unknown"

    def event_time(self, fallback: float) -> float:
        """Publication time in epoch seconds, or ``fallback`` (e.g. the Kafka timestamp)."""
        return self.published_at.timestamp() if self.published_at else fallback
