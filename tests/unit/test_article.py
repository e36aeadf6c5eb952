"""Article: content keys, source names, embed text and stable ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.engine.article import Article, normalize_text, stable_id


def _key(title: str, text: str = "") -> str:
    return Article(id="any", title=title, text=text).content_key


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("QUAKE HITS CITY", "Many people hurt."),
        ("quake hits city", "many people hurt"),
        ("Quake, hits city!", "Many people -- hurt..."),
        ("  Quake   hits\tcity ", "Many\npeople  hurt."),
        ("Quake hits city", "Many people hurt."),
    ],
)
def test_content_key_ignores_case_punctuation_and_whitespace(title: str, text: str) -> None:
    assert _key(title, text) == _key("Quake hits city", "Many people hurt.")


def test_content_key_ignores_unicode_composition() -> None:
    # "é" precomposed (U+00E9) and "e" + combining acute (U+0301) are the same text.
    assert _key("Caf\u00e9 closes") == _key("Cafe\u0301 closes")
    # Full-width letters fold to ASCII under NFKC.
    assert _key("\uff21\uff22\uff23 news") == _key("abc news")


def test_content_key_ignores_accents_as_documented() -> None:
    # normalize_text's docstring promises an accent-insensitive form.
    assert normalize_text("Café Zürich") == normalize_text("Cafe Zurich")


def test_content_key_differs_for_different_text() -> None:
    base = _key("Quake hits city", "Many people hurt.")
    assert _key("Quake hits town", "Many people hurt.") != base
    assert _key("Quake hits city", "Few people hurt.") != base
    assert _key("Quake hits city", "") != base
    # The title/text boundary counts: moving a word across it is a different article.
    assert _key("Quake hits", "city") != _key("Quake", "hits city")


def test_content_key_does_not_depend_on_id_or_metadata() -> None:
    a = Article(id="1", title="Same", text="Body", source="a", url="https://a.example/1")
    b = Article(id="2", title="Same", text="Body", source="b", url="https://b.example/2")
    assert a.content_key == b.content_key


def test_normalize_text() -> None:
    assert normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert normalize_text("...") == ""


@pytest.mark.parametrize(
    ("source", "url", "expected"),
    [
        ("Reuters", "https://www.bbc.co.uk/news/1", "Reuters"),
        (None, "https://www.bbc.co.uk/news/1", "bbc.co.uk"),
        ("", "https://apnews.com/article/x", "apnews.com"),
        (None, "https://WWW.Example.COM:8443/x", "example.com"),
        (None, "https://news.www.example.com/x", "news.www.example.com"),
        (None, "not a url", "unknown"),
        (None, None, "unknown"),
        ("", "", "unknown"),
    ],
)
def test_source_name(source: str | None, url: str | None, expected: str) -> None:
    assert Article(id="x", title="t", source=source, url=url).source_name == expected


def test_embed_text_joins_title_and_text_and_cuts() -> None:
    article = Article(id="x", title="Title", text="Body text here")
    assert article.embed_text(1000) == "Title. Body text here"
    assert article.embed_text(8) == "Title. B"
    assert len(article.embed_text(8)) == 8
    assert Article(id="x", title="Only title").embed_text(1000) == "Only title"
    assert Article(id="x", title="Only title").embed_text(4) == "Only"


def test_event_time_prefers_published_at() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert Article(id="x", title="t", published_at=when).event_time(1.0) == when.timestamp()
    assert Article(id="x", title="t").event_time(123.5) == 123.5


def test_stable_id_is_deterministic_and_prefixed() -> None:
    first = stable_id("st", "article-1")
    assert first == stable_id("st", "article-1")
    assert first.startswith("st-")
    assert len(first) == len("st-") + 12
    int(first.removeprefix("st-"), 16)  # hex digest
    assert stable_id("st", "article-2") != first
    assert stable_id("dg", "article-1") != first
    assert stable_id("dg", "article-1").removeprefix("dg-") == first.removeprefix("st-")


def test_article_is_frozen() -> None:
    article = Article(id="x", title="t")
    with pytest.raises(AttributeError):
        article.title = "u"  # type: ignore[misc]
