"""Feed bodies -> items -> article records: RSS 0.91/1.0/2.0, Atom, JSON Feed, hostile bodies."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from streams.feeds.errors import FeedParseError, InvalidFeedUrl
from streams.feeds.language import LanguageDetector, primary_tag
from streams.feeds.parsing import item_to_article, parse_feed, plain_text
from streams.feeds.urls import article_id

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
BASE = "http://127.0.0.1:8080/feed"


def test_rss2_items_with_relative_links_dates_in_utc_and_ttl() -> None:
    feed = parse_feed((DATA / "rss2.xml").read_bytes(), url=BASE)
    assert feed.title == "Harbour Gazette"
    assert feed.lang == "en"
    assert feed.ttl_s == 30 * 60
    first, second = feed.items
    assert first.url == "http://127.0.0.1:8080/news/port-strike?utm_source=rss&utm_medium=feed"
    assert first.text == "Dock workers walked out on Monday after talks on pay collapsed."
    assert first.published_at == "2026-12-07T08:30:00Z"  # +0100 -> UTC
    assert second.published_at == "2026-12-06T18:00:00Z"


def test_rss091_with_its_doctype_and_latin1() -> None:
    feed = parse_feed((DATA / "rss091.xml").read_bytes(), url=BASE)
    assert feed.lang == "fr"
    assert feed.items[0].title == "Crue de la rivière: les routes fermées"
    assert feed.items[0].published_at is None


def test_rss10_rdf() -> None:
    feed = parse_feed((DATA / "rdf.xml").read_bytes(), url=BASE)
    (item,) = feed.items
    assert item.url == "http://127.0.0.1/avalanche"
    assert item.published_at == "2026-12-07T11:15:00Z"


def test_atom_content_and_language() -> None:
    feed = parse_feed((DATA / "atom.xml").read_bytes(), url=BASE)
    (item,) = feed.items
    assert item.lang == "de"
    assert item.text.startswith("Der Stadtrat hat am Montag")
    assert item.published_at == "2026-12-07T07:00:00Z"


def test_json_feed_11() -> None:
    feed = parse_feed((DATA / "jsonfeed.json").read_bytes(), url=BASE)
    assert feed.title == "Desert Times"
    first, second = feed.items
    assert first.text == "The government declared a drought emergency after a year without rain."
    assert first.published_at == "2026-12-07T05:00:00Z"
    assert second.url is None
    with pytest.raises(InvalidFeedUrl, match="no link"):
        item_to_article(second, feed_id="f", feed_title=None, feed_url=BASE)


def test_billion_laughs_is_parsed_fast_and_small() -> None:
    body = (DATA / "billion-laughs.xml").read_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        feed = parse_feed(body, url=BASE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    # Expanded, &lol9; is 10**9 "lol"s (3 GB): a parser that expands it takes many seconds and
    # gigabytes. Unexpanded it costs what the 1 KB document costs.
    assert peak < 20 * 1024 * 1024
    assert elapsed < 5.0
    for item in feed.items:
        assert len(item.title) + len(item.text) < 1000


def test_html_instead_of_a_feed_is_a_parse_error_with_a_hint() -> None:
    with pytest.raises(FeedParseError, match=r"not an RSS, Atom or JSON feed.*check the URL"):
        parse_feed((DATA / "page.html").read_bytes(), url=BASE, content_type="text/html")


def test_json_that_is_not_a_json_feed() -> None:
    with pytest.raises(FeedParseError, match="not a JSON Feed"):
        parse_feed(b'{"hello": "world"}', url=BASE)


def test_invalid_utf8_is_read_not_refused() -> None:
    feed = parse_feed((DATA / "bad-utf8.xml").read_bytes(), url=BASE)
    (item,) = feed.items
    assert item.title.startswith("Caf") and item.title.endswith("reopens after fire")


def test_item_to_article_shape_and_id_from_the_canonical_url() -> None:
    feed = parse_feed((DATA / "rss2.xml").read_bytes(), url=BASE)
    article = item_to_article(feed.items[0], feed_id="feed-1", feed_title=feed.title, feed_url=BASE)
    assert article == {
        "id": article_id("http://127.0.0.1:8080/news/port-strike"),
        "title": "Port strike halts container traffic",
        "text": "Dock workers walked out on Monday after talks on pay collapsed.",
        "source": "Harbour Gazette",
        "url": "http://127.0.0.1:8080/news/port-strike",
        "published_at": "2026-12-07T08:30:00Z",
        "lang": "en",
        "feed_id": "feed-1",
    }
    second = item_to_article(feed.items[1], feed_id="feed-1", feed_title=None, feed_url=BASE)
    assert second["url"] == "http://127.0.0.1:8080/news/ferry-winter"  # fragment dropped
    assert second["source"] == "127.0.0.1"  # no feed title: the host


def test_language_detected_when_the_feed_does_not_say() -> None:
    feed = parse_feed((DATA / "nolang.xml").read_bytes(), url=BASE)
    assert feed.items[0].lang is None
    article = item_to_article(
        feed.items[0],
        feed_id="f",
        feed_title=feed.title,
        feed_url=BASE,
        detector=LanguageDetector(),
    )
    assert article["lang"] == "es"


def test_language_detector_stays_silent_on_short_text() -> None:
    assert LanguageDetector().detect("Hi") is None


@pytest.mark.parametrize(
    ("tag", "primary"), [("en-US", "en"), ("pt_BR", "pt"), ("", None), ("1234", None)]
)
def test_primary_tag(tag: str, primary: str | None) -> None:
    assert primary_tag(tag) == primary


def test_plain_text_drops_scripts_and_tags() -> None:
    assert plain_text("<p>a <b>b</b></p><script>x()</script><style>p{}</style>") == "a b"
