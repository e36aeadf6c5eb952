"""parse_article: valid records become Articles; every invalid one says why and what to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from config.exceptions import StorywatchError
from config.settings import Settings
from streams.engine.validation import (
    TITLE_MAX_CHARS,
    InvalidArticle,
    article_from_mapping,
    derived_record_max_bytes,
    parse_article,
)

MAX = 10_000


def _raw(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _invalid(raw: bytes | None, max_bytes: int = MAX) -> InvalidArticle:
    with pytest.raises(InvalidArticle) as info:
        parse_article(raw, max_bytes)
    exc = info.value
    assert isinstance(exc, StorywatchError)
    # The message is "<reason>: <detail>" and the detail is a real explanation.
    assert exc.detail.strip()
    assert str(exc) == f"{exc.reason}: {exc.detail}"
    return exc


def test_valid_article_fields_and_types() -> None:
    article = parse_article(
        _raw(
            {
                "id": "a-1",
                "title": "  Quake hits city  ",
                "text": "  A strong quake. Many hurt.  ",
                "source": "Reuters",
                "url": "https://www.reuters.com/x",
                "published_at": "2024-03-10T16:52:50Z",
                "lang": "en",
            }
        ),
        MAX,
    )
    assert article.id == "a-1"
    assert article.title == "Quake hits city"
    assert article.text == "A strong quake. Many hurt."
    assert article.source == "Reuters"
    assert article.url == "https://www.reuters.com/x"
    assert article.lang == "en"
    assert article.published_at == datetime(2024, 3, 10, 16, 52, 50, tzinfo=UTC)


def test_integer_id_becomes_string() -> None:
    article = parse_article(_raw({"id": 42, "title": "t"}), MAX)
    assert article.id == "42"
    assert article.text == ""
    assert article.source is None
    assert article.published_at is None


def test_empty_optional_strings_become_none() -> None:
    article = parse_article(
        _raw({"id": "x", "title": "t", "source": "", "url": "", "lang": "", "published_at": ""}),
        MAX,
    )
    assert (article.source, article.url, article.lang, article.published_at) == (
        None,
        None,
        None,
        None,
    )


def test_published_at_with_offset_is_the_same_instant() -> None:
    article = parse_article(
        _raw({"id": "x", "title": "t", "published_at": "2024-03-10T18:52:50+02:00"}), MAX
    )
    assert article.published_at is not None
    assert article.published_at.utcoffset() == timedelta(hours=2)
    assert article.published_at == datetime(2024, 3, 10, 16, 52, 50, tzinfo=UTC)
    assert article.published_at.tzinfo == timezone(timedelta(hours=2))


def test_naive_published_at_is_taken_as_utc() -> None:
    article = parse_article(
        _raw({"id": "x", "title": "t", "published_at": "2024-03-10T16:52:50"}), MAX
    )
    assert article.published_at is not None
    assert article.published_at.tzinfo is not None
    assert article.published_at.utcoffset() == timedelta(0)
    assert (
        article.published_at.timestamp()
        == datetime(2024, 3, 10, 16, 52, 50, tzinfo=UTC).timestamp()
    )


def test_empty_title_borrows_first_sentence() -> None:
    article = parse_article(
        _raw({"id": "x", "title": "   ", "text": "Dam bursts upstream. Villages evacuated."}), MAX
    )
    assert article.title == "Dam bursts upstream"
    assert article.text == "Dam bursts upstream. Villages evacuated."


def test_borrowed_title_is_cut_to_headline_length() -> None:
    article = parse_article(_raw({"id": "x", "title": "", "text": "w" * 500}), MAX)
    assert article.title == "w" * 200


def test_empty_record() -> None:
    exc = _invalid(None)
    assert exc.reason == "empty"


def test_too_large() -> None:
    raw = _raw({"id": "x", "title": "t", "text": "y" * 200})
    exc = _invalid(raw, max_bytes=len(raw) - 1)
    assert exc.reason == "too_large"
    assert str(len(raw)) in exc.detail
    assert "STORYWATCH_MAX_RECORD_BYTES" in exc.detail
    # Exactly at the limit is accepted.
    assert parse_article(raw, len(raw)).id == "x"


def test_not_utf8() -> None:
    exc = _invalid(b'{"id": "x", "title": "caf\xe9"}')
    assert exc.reason == "not_utf8"
    assert "UTF-8" in exc.detail


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"id": "x",}'])
def test_not_json(raw: bytes) -> None:
    assert _invalid(raw).reason == "not_json"


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None])
def test_not_object(payload: Any) -> None:
    exc = _invalid(_raw(payload))
    assert exc.reason == "not_object"
    assert "object" in exc.detail


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"title": "t"}, "'id'"),
        ({"id": None, "title": "t"}, "'id'"),
        ({"id": "x", "text": "body"}, "'title'"),
        ({"id": "x", "title": None, "text": "body"}, "'title'"),
        ({"id": "x", "title": "", "text": ""}, "'text'"),
        ({"id": "x", "title": "  ", "text": " \n "}, "'text'"),
        ({"id": "x", "title": ""}, "'text'"),
    ],
)
def test_missing_field(payload: dict[str, Any], names: str) -> None:
    exc = _invalid(_raw(payload))
    assert exc.reason == "missing_field"
    assert names in exc.detail


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"id": "x", "title": 5}, "'title'"),
        ({"id": True, "title": "t"}, "'id'"),
        ({"id": 1.5, "title": "t"}, "'id'"),
        ({"id": ["x"], "title": "t"}, "'id'"),
        ({"id": "x", "title": "t", "text": 7}, "'text'"),
        ({"id": "x", "title": "t", "source": {"name": "r"}}, "'source'"),
        ({"id": "x", "title": "t", "url": 1}, "'url'"),
        ({"id": "x", "title": "t", "lang": False}, "'lang'"),
        ({"id": "x", "title": "t", "published_at": 1710089570}, "'published_at'"),
    ],
)
def test_wrong_type(payload: dict[str, Any], names: str) -> None:
    exc = _invalid(_raw(payload))
    assert exc.reason == "wrong_type"
    assert names in exc.detail


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "10/03/2024"])
def test_bad_timestamp(value: str) -> None:
    exc = _invalid(_raw({"id": "x", "title": "t", "published_at": value}))
    assert exc.reason == "bad_timestamp"
    assert repr(value) in exc.detail
    assert "ISO-8601" in exc.detail


def test_article_from_mapping_checks_the_same_rules() -> None:
    with pytest.raises(InvalidArticle) as info:
        article_from_mapping(["not", "a", "dict"])
    assert info.value.reason == "not_object"
    assert article_from_mapping({"id": "x", "title": "t"}).title == "t"


@pytest.mark.parametrize("field", ["id", "title", "text"])
def test_accepted_article_strings_are_encodable(field: str) -> None:
    r"""A JSON escape of a lone surrogate (``"\ud800"``) is valid UTF-8 JSON but not text.
    It must be rejected here (to the DLQ): downstream, ``stable_id`` hashes ``id.encode()``
    and the tokenizer rejects the whole embedding batch holding such a title or text."""
    payload = {"id": "x", "title": "t", "text": "body"}
    payload[field] = "bad \ud800 value"
    raw = json.dumps(payload).encode("utf-8")  # ensure_ascii: the surrogate is an escape
    try:
        article = parse_article(raw, MAX)
    except InvalidArticle:
        return
    unencodable = [
        value
        for value in (article.id, article.title, article.text)
        if value.encode("utf-8", "replace") != value.encode("utf-8", "surrogatepass")
    ]
    assert not unencodable, f"accepted a lone surrogate in {field!r}: {unencodable!r}"


# -- the size budget ------------------------------------------------------------------------

BUDGET = 4096


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "unit",
    ["Привет мир. ", "新闻报道。", "🌍🔥 ", 'quote " and \\ back ', "\x01\x02ctrl "],
    ids=["cyrillic", "cjk", "emoji", "escapes", "control"],
)
def test_a_text_over_the_budget_is_cut_to_it_as_json_and_flagged(unit: str) -> None:
    text = unit * 2000
    article = parse_article(_raw({"id": "big", "title": "t", "text": text}), 10**7, BUDGET)
    assert _json_size(article.text) <= BUDGET
    # The longest prefix that fits: one more character would not.
    assert _json_size(text.strip()[: len(article.text) + 1]) > BUDGET
    assert text.strip().startswith(article.text)
    assert article.truncated_from == len(b"t") + len(text.strip().encode())


def test_a_text_inside_the_budget_is_kept_whole_and_not_flagged() -> None:
    text = "Привет " * 100
    article = parse_article(_raw({"id": "ok", "title": "t", "text": text}), MAX, BUDGET)
    assert article.text == text.strip()
    assert article.truncated_from is None


def test_without_a_budget_the_text_is_whole() -> None:
    text = "x " * 5000
    article = parse_article(_raw({"id": "ok", "title": "t", "text": text}), 10**6)
    assert article.text == text.strip() and article.truncated_from is None


def test_a_title_past_its_limit_is_cut_and_flagged() -> None:
    title = "Заголовок " * 500
    article = parse_article(_raw({"id": "t", "title": title}), 10**6, BUDGET)
    assert article.title == title.strip()[:TITLE_MAX_CHARS]
    assert article.truncated_from == len(title.strip().encode())


@pytest.mark.parametrize(
    ("field", "limit"), [("id", 512), ("url", 4096), ("source", 512), ("lang", 64)]
)
def test_an_overlong_key_field_is_refused_not_cut(field: str, limit: int) -> None:
    payload = {"id": "a", "title": "t", field: "x" * (limit + 1)}
    exc = _invalid(_raw(payload), 10**6)
    assert exc.reason == "field_too_long"
    assert field in exc.detail and "shorter" in exc.detail
    payload[field] = "x" * limit
    assert parse_article(_raw(payload), 10**6) is not None


def test_the_derived_record_bound_follows_the_budget() -> None:
    assert derived_record_max_bytes(Settings(max_article_text_bytes=1_000_000).embed) > 1_000_000
    small, large = Settings(max_article_text_bytes=4096), Settings(max_article_text_bytes=8192)
    assert derived_record_max_bytes(large.embed) - derived_record_max_bytes(small.embed) == 4096
