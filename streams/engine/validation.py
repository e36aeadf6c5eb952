"""Turn raw record bytes into an :class:`Article`, or say precisely why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from config.exceptions import StorywatchError
from streams.engine.article import Article

__all__ = ["InvalidArticle", "parse_article", "article_from_mapping"]

_OPTIONAL_STRINGS = ("text", "source", "url", "lang")


class InvalidArticle(StorywatchError):
    """A record that is not a valid article; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_article(raw: bytes | None, max_bytes: int) -> Article:
    """Decode one record value. Raises :class:`InvalidArticle` with a reason label."""
    if raw is None:
        raise InvalidArticle("empty", "record has no value; send a JSON object")
    if len(raw) > max_bytes:
        raise InvalidArticle(
            "too_large",
            f"{len(raw)} bytes > STORYWATCH_MAX_RECORD_BYTES={max_bytes}; shorten the text "
            "or raise the limit",
        )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArticle("not_utf8", f"byte {exc.start} is not UTF-8; encode as UTF-8") from exc
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise InvalidArticle(
            "not_json", f"{exc.msg} at char {exc.pos}; send one JSON object"
        ) from exc
    except RecursionError as exc:
        # Deeply nested arrays/objects exhaust the parser's stack: a poison record, not a bug.
        raise InvalidArticle(
            "too_deep", "JSON nested too deeply to parse; send one flat JSON object"
        ) from exc
    except ValueError as exc:
        # An integer of more than 4,300 digits (Python's int-parsing limit) and the like.
        raise InvalidArticle(
            "not_json", f"a value cannot be parsed ({str(exc)[:80]}); send ids as strings"
        ) from exc
    return article_from_mapping(payload)


def article_from_mapping(payload: Any) -> Article:
    """Check field presence and types of a decoded JSON value."""
    if not isinstance(payload, dict):
        raise InvalidArticle("not_object", f"got JSON {type(payload).__name__}; send an object")
    for field in ("id", "title"):
        if field not in payload or payload[field] is None:
            raise InvalidArticle("missing_field", f"'{field}' is required")
    if isinstance(payload["id"], bool) or not isinstance(payload["id"], str | int):
        raise InvalidArticle("wrong_type", "'id' must be a string")
    if not isinstance(payload["title"], str):
        raise InvalidArticle("wrong_type", "'title' must be a string")
    text = payload.get("text")
    if not payload["title"].strip() and not (isinstance(text, str) and text.strip()):
        raise InvalidArticle("missing_field", "'title' and 'text' are both empty")
    for field in _OPTIONAL_STRINGS:
        value = payload.get(field)
        if value is not None and not isinstance(value, str):
            raise InvalidArticle("wrong_type", f"'{field}' must be a string or null")
    for field in ("id", "title", *_OPTIONAL_STRINGS):
        value = payload.get(field)
        if isinstance(value, str) and not _encodable(value):
            raise InvalidArticle(
                "not_utf8",
                f"'{field}' holds a lone surrogate escape (\\ud800-\\udfff); "
                "send valid Unicode text",
            )
    body = (payload.get("text") or "").strip()
    return Article(
        id=str(payload["id"]),
        # An empty title borrows the text's first sentence, so every story has a headline.
        title=payload["title"].strip() or _first_sentence(body),
        text=body,
        source=payload.get("source") or None,
        url=payload.get("url") or None,
        published_at=_parse_time(payload.get("published_at")),
        lang=payload.get("lang") or None,
    )


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArticle("wrong_type", "'published_at' must be an ISO-8601 string or null")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArticle(
            "bad_timestamp", f"'published_at'={value!r} is not ISO-8601 (2014-03-10T16:52:50Z)"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Why 200 chars: a headline-length fallback title; longer first sentences are cut.
_TITLE_FALLBACK_CHARS = 200


def _first_sentence(text: str) -> str:
    head = text.split(". ", 1)[0]
    return head[:_TITLE_FALLBACK_CHARS]
