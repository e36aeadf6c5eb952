"""Standard Webhooks signing and the webhook body formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streams.contracts.cloudevents import cloud_event
from streams.subscriptions.errors import DeliveryError, InvalidSecret, UnknownFormat
from streams.subscriptions.webhooks import (
    FORMATS,
    new_secret,
    render_body,
    slack_escape,
    webhook_headers,
)

SECRET = "whsec_" + base64.b64encode(b"storywatch-test-secret-32-bytes!").decode()
OTHER = "whsec_" + base64.b64encode(b"another-secret-of-thirty-two-by!").decode()
T0 = 1_700_000_000.0


def alert_event(
    *,
    headline: str = "Flood in the north",
    sample_urls: list[str] | None = None,
    sources: list[str] | None = None,
    keywords: list[str] | None = None,
    why: dict[str, Any] | None = None,
    step: int | None = None,
    trigger: str = "emerging",
    subscription_name: str = "Floods",
) -> dict[str, Any]:
    data = {
        "subscription_id": "sub-1",
        "subscription_name": subscription_name,
        "trigger": trigger,
        "step": step,
        "story": {
            "story_id": "st-1",
            "headline": headline,
            "size": 12,
            "source_count": 3,
            "sources": ["bbc", "reuters", "dw"] if sources is None else sources,
            "keywords": ["flood", "rain"] if keywords is None else keywords,
            "sample_urls": ["https://news.example/a"] if sample_urls is None else sample_urls,
            "first_seen": "2023-11-14T22:13:20Z",
            "last_seen": "2023-11-14T23:13:20Z",
        },
        "why": {"keywords": ["flood"], "semantic_score": 0.8234, "sources": []}
        if why is None
        else why,
    }
    return cloud_event(
        "io.storywatch.subscription.alert",
        "st-1",
        data,
        source="/storywatch/subscriptions/sub-1",
        event_id="alert-sub-1-st-1",
        time=T0,
    )


# --- signing ---------------------------------------------------------------------------------


def test_headers_verify_with_standardwebhooks() -> None:
    body = render_body(alert_event())
    headers = webhook_headers("alert-sub-1-st-1", SECRET, body, time.time())
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "alert-sub-1-st-1"


def test_another_secret_does_not_verify() -> None:
    body = render_body(alert_event())
    headers = webhook_headers("alert-sub-1-st-1", SECRET, body, time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(body, headers)
    tampered = body.replace(b"Flood", b"Blood")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)


def test_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    body = '{"headline":"Überschwemmung"}'.encode()
    headers = webhook_headers("msg_1", SECRET, body, T0 + 0.9)
    assert headers["webhook-timestamp"] == str(int(T0))  # unix seconds, floored
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"msg_1.{int(T0)}.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_secret_without_prefix_or_padding_is_the_same_key() -> None:
    body = b"{}"
    raw = SECRET.removeprefix("whsec_").rstrip("=")
    assert webhook_headers("m", raw, body, T0) == webhook_headers("m", SECRET, body, T0)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!not-base64!!!", "   "])
def test_bad_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidSecret, match="new_secret"):
        webhook_headers("m", secret, b"{}", T0)


@pytest.mark.parametrize("webhook_id", ["", "has space", "line\nbreak", "x" * 257, "ümlaut"])
def test_bad_webhook_id_is_refused(webhook_id: str) -> None:
    with pytest.raises(DeliveryError, match="webhook id"):
        webhook_headers(webhook_id, SECRET, b"{}", T0)


def test_body_must_be_utf8() -> None:
    with pytest.raises(DeliveryError, match="UTF-8"):
        webhook_headers("m", SECRET, b"\xff\xfe", T0)


def test_new_secret_is_random_32_bytes() -> None:
    one, two = new_secret(), new_secret()
    assert one != two
    assert one.startswith("whsec_")
    assert len(base64.b64decode(one.removeprefix("whsec_"), validate=True)) == 32
    body = b"{}"
    headers = webhook_headers("m", one, body, time.time())
    Webhook(one).verify(body, headers)


# --- formats ---------------------------------------------------------------------------------


def test_cloudevents_body_is_the_event_as_compact_utf8_json() -> None:
    event = alert_event(headline="Überschwemmung im Norden")
    body = render_body(event, "cloudevents")
    assert json.loads(body) == event
    assert body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert "Überschwemmung".encode() in body
    assert render_body(event) == body  # the default


def test_lone_surrogate_stays_valid_json() -> None:
    event = alert_event(headline="bad \ud800 text")
    body = render_body(event)
    body.decode("utf-8")
    assert json.loads(body)["data"]["story"]["headline"] == "bad \ud800 text"


def test_nan_is_refused() -> None:
    event = alert_event(why={"keywords": [], "semantic_score": float("nan"), "sources": []})
    with pytest.raises(DeliveryError, match="NaN"):
        render_body(event)


def test_unknown_format() -> None:
    with pytest.raises(UnknownFormat, match="cloudevents, slack"):
        render_body(alert_event(), "xml")
    assert FORMATS == ("cloudevents", "slack")


def slack(event: dict[str, Any]) -> dict[str, Any]:
    message = json.loads(render_body(event, "slack"))
    assert set(message) == {"text", "blocks"}
    return message


def texts(message: dict[str, Any]) -> list[str]:
    found = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        found.extend(f["text"] for f in block.get("fields", []))
        found.extend(e["text"] for e in block.get("elements", []))
    return found


def test_slack_message_layout() -> None:
    message = slack(alert_event(step=10, trigger="growth"))
    assert "\n" not in message["text"]
    assert "Flood in the north" in message["text"]
    title = message["blocks"][0]["text"]
    assert title == {"type": "mrkdwn", "text": "*<https://news.example/a|Flood in the north>*"}
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert fields == [
        "*Trigger*\ngrowth (step 10)",
        "*Size*\n12 articles, 3 sources",
        "*Sources*\nbbc, reuters, dw",
        "*Keywords*\nflood, rain",
    ]
    why = message["blocks"][2]["text"]["text"]
    assert why == "*Why it matched*\nkeywords: flood; semantic score 0.82"
    context = message["blocks"][3]["elements"][0]["text"]
    assert "subscription Floods" in context
    assert "2023-11-14T22:13:20Z" in context


def test_readme_shows_the_slack_body_render_body_makes() -> None:
    """README, "Alert subscriptions": the Slack example is this module's output, verbatim."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("**The Slack body.**", 1)[1].split("```json\n", 1)[1].split("```")[0]
    assert json.loads(example) == slack(alert_event(step=10, trigger="growth"))


def test_slack_without_sample_url_has_no_link() -> None:
    message = slack(alert_event(sample_urls=[], keywords=[]))
    assert message["blocks"][0]["text"]["text"] == "*Flood in the north*"
    assert "*Keywords*\nnone" in texts(message)


def test_slack_why_without_reasons() -> None:
    message = slack(alert_event(why={"keywords": [], "semantic_score": None, "sources": []}))
    assert "passed the subscription's filters" in message["blocks"][2]["text"]["text"]


def test_slack_escapes_article_text() -> None:
    event = alert_event(
        headline="<script>alert(1)</script> Tom & Jerry <!channel> <@U123>",
        sources=["<https://evil.example|click>"],
        keywords=["a&b"],
        subscription_name="<!here>",
        why={"keywords": ["<!everyone>"], "semantic_score": None, "sources": ["x>y"]},
    )
    body = render_body(event, "slack")
    message = json.loads(body)
    raw = body.decode()
    for bad in ("<script>", "<!channel>", "<@U123>", "<!here>", "<!everyone>", "<https://evil"):
        assert bad not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in message["text"]
    assert "a&amp;b" in raw


def test_slack_link_url_cannot_break_out() -> None:
    message = slack(alert_event(sample_urls=["https://x.example/?a=1&b=<2>|<!channel>"]))
    title = message["blocks"][0]["text"]["text"]
    assert title == (
        "*<https://x.example/?a=1&amp;b=&lt;2&gt;%7C&lt;!channel&gt;|Flood in the north>*"
    )


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x/y", "//x.example/y", ""])
def test_slack_links_only_http_urls(url: str) -> None:
    message = slack(alert_event(sample_urls=[url]))
    assert message["blocks"][0]["text"]["text"] == "*Flood in the north*"


def test_slack_long_values_are_cut() -> None:
    message = slack(alert_event(headline="&" * 1000, sources=[f"source-{i}" for i in range(25)]))
    title = message["blocks"][0]["text"]["text"]
    assert len(title) < 400
    assert title.endswith("…>*")
    assert "&amp;…" in title  # cut between escapes, never inside one
    sources = message["blocks"][1]["fields"][2]["text"]
    assert sources.endswith("source-9 +15 more")


def test_slack_escape() -> None:
    assert slack_escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_slack_refuses_an_event_without_the_alert_keys() -> None:
    event = alert_event()
    del event["data"]["story"]["headline"]
    with pytest.raises(DeliveryError, match="headline"):
        render_body(event, "slack")


_ENTITY = re.compile(r"&(amp|lt|gt);")


@given(
    headline=st.text(),
    sources=st.lists(st.text(), max_size=12),
    keywords=st.lists(st.text(), max_size=12),
    why_keywords=st.lists(st.text(), max_size=3),
    name=st.text(),
    trigger=st.text(),
)
def test_slack_text_never_carries_a_control_sequence(
    headline: str,
    sources: list[str],
    keywords: list[str],
    why_keywords: list[str],
    name: str,
    trigger: str,
) -> None:
    event = alert_event(
        headline=headline,
        sources=sources,
        keywords=keywords,
        why={"keywords": why_keywords, "semantic_score": 0.5, "sources": sources},
        subscription_name=name,
        trigger=trigger,
    )
    message = slack(event)
    title = message["blocks"][0]["text"]["text"]
    assert title.startswith("*<https://news.example/a|") and title.endswith(">*")
    found = texts(message)
    assert found[1] == title
    found[1] = title.removeprefix("*<https://news.example/a|").removesuffix(">*")
    for text in found:
        assert "<" not in text and ">" not in text
        assert "&" not in _ENTITY.sub("", text)
        assert len(text) <= 3000
