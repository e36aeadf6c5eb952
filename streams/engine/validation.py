"""Turn raw record bytes into an :class:`Article`, or say precisely why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from config.exceptions import StorywatchError
from config.groups import EmbedSettings
from streams.engine.article import Article

__all__ = [
    "TITLE_MAX_CHARS",
    "InvalidArticle",
    "article_from_mapping",
    "derived_record_max_bytes",
    "fit_json",
    "parse_article",
]

_OPTIONAL_STRINGS = ("text", "source", "url", "lang")
# Why these lengths: every derived record (embedded article, story event, state) carries these
# fields again, so each is bounded. An id is a key (a UUID or a URL hash is < 100 chars); a URL
# past 4,096 chars is refused by most servers; an outlet's name and a language tag (BCP 47)
# are short. Longer values are a broken or hostile producer: dead-lettered, not cut, since a
# cut id or URL would name another article.
_FIELD_MAX_CHARS = {"id": 512, "url": 4096, "source": 512, "lang": 64}
# Why 1,000 chars: a headline is under 300; a longer title is a body pasted in the wrong field.
# It is cut (not refused), with the text's budget below, and the article is flagged.
TITLE_MAX_CHARS = 1000


# Why 128 KiB beside the text's budget: all else an embedded record or story event holds, at
# its bounds: a title of 1,000 chars (6 KB even if every char is escaped), id/url/source/lang
# (5 KB), the terms of the title and the lead, the names of the first 3,000 chars, and a
# vector of up to 1,536 floats (8 KB in base64).
_RECORD_ALLOWANCE_BYTES = 128 * 1024


def derived_record_max_bytes(embed: EmbedSettings) -> int:
    """The largest record the size budget lets the embed stage write: the derived topics
    are created with this ``max.message.bytes``, and a record past it is dead-lettered."""
    return embed.max_article_text_bytes + _RECORD_ALLOWANCE_BYTES


class InvalidArticle(StorywatchError):
    """A record that is not a valid article; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_article(raw: bytes | None, max_bytes: int, max_text_bytes: int | None = None) -> Article:
    """Decode one record value. Raises :class:`InvalidArticle` with a reason label.
    ``max_text_bytes``: the text's budget (see :func:`article_from_mapping`)."""
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
    return article_from_mapping(payload, max_text_bytes)


def article_from_mapping(payload: Any, max_text_bytes: int | None = None) -> Article:
    """Check field presence, types and lengths of a decoded JSON value. The title is cut to
    :data:`TITLE_MAX_CHARS`, and the text to ``max_text_bytes`` as JSON (UTF-8, unescaped)
    when given; a cut article keeps its original size in ``truncated_from``."""
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
    _check_lengths(payload)
    body = (payload.get("text") or "").strip()
    # An empty title borrows the text's first sentence, so every story has a headline.
    title = payload["title"].strip() or _first_sentence(body)
    cut_title = title[:TITLE_MAX_CHARS]
    cut_body = body if max_text_bytes is None else fit_json(body, max_text_bytes)
    truncated = None
    if len(cut_title) < len(title) or len(cut_body) < len(body):
        truncated = len(title.encode()) + len(body.encode())
    return Article(
        id=str(payload["id"]),
        title=cut_title,
        text=cut_body,
        truncated_from=truncated,
        source=payload.get("source") or None,
        url=payload.get("url") or None,
        published_at=_parse_time(payload.get("published_at")),
        lang=payload.get("lang") or None,
    )


def _check_lengths(payload: dict[str, Any]) -> None:
    for field, limit in _FIELD_MAX_CHARS.items():
        value = payload.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise InvalidArticle(
                "field_too_long",
                f"'{field}' has {len(value)} characters (at most {limit}); send a shorter {field}",
            )


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def fit_json(text: str, max_bytes: int) -> str:
    """``text`` itself if it takes at most ``max_bytes`` as a JSON string (UTF-8, unescaped:
    how derived records are written), else its longest prefix that does (cut at a character,
    never inside one). Quotes, backslashes and control characters count as escaped."""
    if _json_bytes(text) <= max_bytes:
        return text
    low, high = 0, min(len(text), max_bytes)  # a character takes at least one byte
    while low < high:  # the longest prefix that fits: ~20 passes over at most max_bytes
        middle = (low + high + 1) // 2
        if _json_bytes(text[:middle]) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return text[:low]


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
