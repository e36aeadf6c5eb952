"""Feed lists (OPML 2.0, one URL a line), feed records and poll state: pure logic."""

from __future__ import annotations

import pytest

from streams.feeds.errors import FeedListError, InvalidFeedUrl
from streams.feeds.fetcher import Validators
from streams.feeds.health import feed_health
from streams.feeds.model import FeedDef, feed_id, parse_feed_list
from streams.feeds.state import FeedState

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>x</title></head><body>
  <outline text="World">
    <outline type="rss" text="One" title="Feed One" xmlUrl="https://one.example/rss"/>
    <outline text="Nested"><outline type="rss" text="Two" xmlUrl="https://two.example/atom"/></outline>
  </outline>
  <outline type="rss" text="One again" xmlUrl="HTTPS://ONE.example/rss?utm_source=opml"/>
</body></opml>"""


def test_opml_nested_outlines_and_duplicates_kept_once() -> None:
    feeds = parse_feed_list(OPML)
    assert [(f.name, f.url) for f in feeds] == [
        ("Feed One", "https://one.example/rss"),
        ("Two", "https://two.example/atom"),
    ]
    assert feeds[0].id == feed_id("https://one.example/rss?utm_medium=x")


def test_one_url_a_line_with_comments_and_blanks() -> None:
    text = b"# our feeds\n\nhttps://a.example/feed\n  https://b.example/rss  \n"
    assert [f.url for f in parse_feed_list(text)] == [
        "https://a.example/feed",
        "https://b.example/rss",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"https://a.example/feed\nnot a url\n", "feeds.txt, line 2"),
        (b"# nothing\n\n", "lists no URL"),
        (b"\xff\xfe bad", "not UTF-8"),
        (b"<?xml version='1.0'?><rss/>", "not OPML"),
        (b"<?xml version='1.0'?><opml><body><outline", "not well-formed"),
        (b"<?xml version='1.0'?><opml><body></body></opml>", "no <outline xmlUrl"),
        (
            b"<?xml version='1.0'?><!DOCTYPE o [<!ENTITY e 'x'>]><opml><body>"
            b"<outline xmlUrl='https://a.example/&e;'/></body></opml>",
            "declares XML entities",
        ),
        (
            b"<?xml version='1.0'?><opml><body><outline text='Bad' xmlUrl='ftp://x/y'/>"
            b"</body></opml>",
            "outline 'Bad'",
        ),
    ],
)
def test_bad_lists_name_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(FeedListError, match=message):
        parse_feed_list(data, source="feeds.txt")


def test_feed_interval_floor_and_record_round_trip() -> None:
    with pytest.raises(InvalidFeedUrl, match="--interval 5"):
        FeedDef.new("https://a.example/feed", interval_s=5)
    feed = FeedDef.new("https://a.example/feed", name="  A   feed ", interval_s=60)
    assert feed.name == "A feed"
    assert FeedDef.from_record(feed.to_record()) == feed


def test_state_success_failure_retirement_and_items_last_day() -> None:
    day = 86400.0
    state = FeedState("f").succeeded(
        1000 * day, interval_s=300, outcome="ok", validators=Validators("e", None), new_items=3
    )
    assert state.status == "ok" and state.etag == "e" and state.next_poll == 1000 * day + 300
    later = state.succeeded(
        1000 * day + 60, interval_s=300, outcome="ok", validators=Validators(), new_items=2
    )
    assert later.items_last_day(1000 * day + 120) == 5
    assert later.items_last_day(1002 * day) == 0
    failed = later.failed(1001 * day, interval_s=300, outcome="timeout", error="slow")
    assert failed.status == "error" and failed.failures == 1
    assert failed.next_poll == 1001 * day + 600  # doubled
    assert failed.last_success == later.last_success  # kept
    retired = failed.failed(1001 * day, interval_s=300, outcome="error", error="410", retired=True)
    record = retired.to_record()
    assert record["next_poll"] is None
    assert FeedState.from_record(record).next_poll == float("inf")
    row = feed_health(FeedDef.new("https://a.example/feed"), retired, 1001 * day)
    assert row["status"] == "retired" and row["next_poll"] is None
    assert row["last_error"] == "410"


def test_health_of_a_feed_never_polled() -> None:
    row = feed_health(FeedDef.new("https://a.example/feed"), None, 0.0)
    assert row["status"] == "pending" and row["next_poll"] == "due"
    assert row["items_last_day"] == 0 and row["last_success"] is None


def test_import_of_a_bad_file_is_one_clear_line_before_any_kafka(tmp_path) -> None:
    from click.testing import CliRunner

    from streams.cli import main

    bad = tmp_path / "feeds.txt"
    bad.write_text("https://a.example/feed\njavascript:alert(1)\n")
    result = CliRunner().invoke(main, ["feeds", "import", str(bad)])
    assert result.exit_code == 1
    assert "feeds.txt, line 2" in result.output and "http" in result.output
