"""Canonical article URLs: one id per article whatever tracking variant or host case it came in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.feeds.errors import InvalidFeedUrl
from streams.feeds.urls import article_id, canonical_url

_TRACKERS = ["utm_source", "utm_medium", "utm_campaign", "fbclid", "gclid", "mc_cid", "mc_eid"]

_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~ä%", min_size=1, max_size=12)
_host = st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True)
_param = st.from_regex(r"(id|p|page|q|story|x)[0-9]?", fullmatch=True)
_value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(_host)
    path = "/".join(draw(st.lists(_segment, max_size=4)))
    params = draw(st.dictionaries(_param, _value, max_size=3))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{scheme}://{host}/{path}" + (f"?{query}" if query else "")


@given(_urls())
@settings(max_examples=300, deadline=None)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert article_id(once) == article_id(url)


@given(
    _urls(),
    st.lists(st.tuples(st.sampled_from(_TRACKERS), _value), min_size=1, max_size=4),
    st.text(alphabet="abcdefghij", max_size=6),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_tracking_variants_share_one_id(
    url: str, trackers: list[tuple[str, str]], fragment: str, upper_host: bool
) -> None:
    scheme, rest = url.split("://", 1)
    host, _, tail = rest.partition("/")
    variant = f"{scheme}://{host.upper() if upper_host else host}/{tail}"
    extra = "&".join(f"{k}={v}" for k, v in trackers)
    variant += ("&" if "?" in variant else "?") + extra
    if fragment:
        variant += f"#{fragment}"
    assert canonical_url(variant) == canonical_url(url)
    assert article_id(variant) == article_id(url)


def test_canonical_form_examples() -> None:
    url = "HTTPS://News.Example.COM:443/a/b?utm_source=x&b=2&a=1&fbclid=z&gclid=q&mc_cid=1#top"
    assert canonical_url(url) == "https://news.example.com/a/b?a=1&b=2"


def test_distinct_articles_keep_distinct_ids() -> None:
    assert article_id("https://a.example/story?id=1") != article_id("https://a.example/story?id=2")
    assert article_id("https://a.example/1") != article_id("https://b.example/1")


def test_the_id_is_a_hash_of_the_canonical_url() -> None:
    import hashlib

    canonical = canonical_url("https://a.example/x?utm_medium=email")
    assert (
        article_id("https://a.example/x?utm_medium=email")
        == (hashlib.sha256(canonical.encode()).hexdigest()[:32])
    )


@pytest.mark.parametrize("bad", ["ftp://a.example/x", "/relative/path", "mailto:x@y.z", "http://"])
def test_non_http_urls_are_refused_with_a_hint(bad: str) -> None:
    with pytest.raises(InvalidFeedUrl, match="http"):
        canonical_url(bad)
