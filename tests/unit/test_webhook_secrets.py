"""Webhook secrets at rest (sealed on the topic, open in memory), rotation with a grace
period, and URL tokens kept out of error texts and logs. Pure logic: the store's writes go to
a stand-in send; the real broker and worker are in tests/integration/test_http_fair_shares.py."""

from __future__ import annotations

import json
import logging
import sys
import time
from itertools import count
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config.settings import Settings
from streams.subscriptions.errors import SecretUnreadable
from streams.subscriptions.model import Subscription, parse_subscription
from streams.subscriptions.redaction import RedactingFilter, redact_text, redact_url
from streams.subscriptions.sealing import SecretBox
from streams.subscriptions.store import SubscriptionStore
from streams.subscriptions.webhooks import webhook_headers

KEY_A = b"a" * 32
KEY_B = b"b" * 32
BODY = b'{"hello":"world"}'


def _subscription() -> Subscription:
    spec = parse_subscription(
        {"name": "n", "filter": {}, "delivery": {"webhook": {"url": "https://h.example/x"}}}
    )
    return Subscription.create(spec, "alice", 1000.0)


def test_a_sealed_secret_opens_with_the_same_key_and_id_only() -> None:
    box = SecretBox(lambda: KEY_A)
    sealed = box.seal("whsec_abc", "sub_1")
    assert "whsec_abc" not in sealed
    assert box.open(sealed, "sub_1") == "whsec_abc"
    with pytest.raises(SecretUnreadable, match="STORYWATCH_SECRET_KEY"):
        SecretBox(lambda: KEY_B).open(sealed, "sub_1")  # another deployment's key
    with pytest.raises(SecretUnreadable):
        box.open(sealed, "sub_2")  # copied onto another subscription's record
    with pytest.raises(SecretUnreadable):
        box.open("v1.not-base64!!", "sub_1")


def test_the_box_reads_the_deployment_key_on_first_use_only(tmp_path: Any) -> None:
    box = SecretBox.from_settings(Settings(kafka_home=tmp_path).keys)
    assert not (tmp_path / "secret-key").exists()  # nothing read or made yet
    assert box.open(box.seal("whsec_x", "s"), "s") == "whsec_x"
    assert (tmp_path / "secret-key").exists()


def _store(box: SecretBox) -> tuple[SubscriptionStore, list[dict[str, Any] | None]]:
    written: list[dict[str, Any] | None] = []
    offsets = count(10)

    async def send(key: str, record: dict[str, Any] | None) -> int:
        written.append(None if record is None else json.loads(json.dumps(record)))
        return next(offsets)

    settings = Settings()
    store = SubscriptionStore(settings.kafka, settings.topics, settings.keys, send, box)
    return store, written


async def test_the_topic_holds_sealed_secrets_and_memory_the_plain_ones() -> None:
    box = SecretBox(lambda: KEY_A)
    store, written = _store(box)
    sub = _subscription().rotated(2000.0, 60.0)
    await store.put(sub.to_record())
    on_topic = written[-1]
    assert on_topic is not None
    text = json.dumps(on_topic)
    assert sub.secret not in text and str(sub.previous_secret) not in text
    assert set(on_topic) >= {"secret_sealed", "previous_secret_sealed", "previous_secret_until"}
    assert "secret" not in on_topic
    assert Subscription.from_record(store.get(sub.id) or {}) == sub
    # Another worker reading the topic opens it to the same subscription.
    other, _ = _store(box)
    other.follow_record(json.dumps(sub.id).encode(), json.dumps(on_topic).encode(), 10)
    assert Subscription.from_record(other.get(sub.id) or {}) == sub


async def test_a_plaintext_record_from_before_loads_and_is_sealed_on_its_next_write() -> None:
    box = SecretBox(lambda: KEY_A)
    store, written = _store(box)
    sub = _subscription()
    old = sub.to_record()  # what the topic held before encryption: a plain "secret"
    store.follow_record(json.dumps(sub.id).encode(), json.dumps(old).encode(), 3)
    loaded = Subscription.from_record(store.get(sub.id) or {})
    assert loaded.secret == sub.secret
    await store.put(loaded.updated(loaded.spec, 3000.0).to_record())
    assert written[-1] is not None and "secret" not in written[-1]
    assert box.open(written[-1]["secret_sealed"], sub.id) == sub.secret


def test_a_secret_sealed_under_another_key_is_kept_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = _subscription()
    sealed = SecretBox(lambda: KEY_B).seal_record(sub.to_record())
    store, _ = _store(SecretBox(lambda: KEY_A))
    store.follow_record(json.dumps(sub.id).encode(), json.dumps(sealed).encode(), 4)
    kept = Subscription.from_record(store.get(sub.id) or {})
    assert kept.name == sub.name and kept.secret == ""
    assert kept.signing_secrets(0.0) == []
    assert "must share one STORYWATCH_SECRET_KEY" in caplog.text


def _verify(secret: str, headers: dict[str, str]) -> None:
    Webhook(secret).verify(BODY, headers)


def test_during_the_grace_both_secrets_verify_and_after_it_only_the_new() -> None:
    now = time.time()  # the receiver's library checks the timestamp against its clock
    sub = _subscription()
    rotated = sub.rotated(now=now - 50.0, grace_s=100.0)
    assert rotated.secret != sub.secret and rotated.previous_secret == sub.secret
    during = webhook_headers("msg_1", rotated.signing_secrets(now), BODY, now)
    assert len(during["webhook-signature"].split(" ")) == 2
    _verify(sub.secret, during)
    _verify(rotated.secret, during)
    after = webhook_headers("msg_1", rotated.signing_secrets(now + 50.0), BODY, now)
    _verify(rotated.secret, after)
    with pytest.raises(WebhookVerificationError):
        _verify(sub.secret, after)


def test_a_second_rotation_in_the_grace_drops_the_oldest_secret() -> None:
    first = _subscription()
    second = first.rotated(10.0, 100.0)
    third = second.rotated(20.0, 100.0)
    assert third.signing_secrets(30.0) == [third.secret, second.secret]
    assert first.secret not in third.signing_secrets(30.0)


@pytest.mark.parametrize(
    ("url", "hidden", "kept"),
    [
        ("https://user:pa55word@hooks.example.com/x", ["user", "pa55word"], ["hooks.example.com"]),
        ("https://h.example/in?token=abc123&key=k&sig=s&x=1", ["abc123", "=k", "=s"], ["token="]),
        (
            "https://hooks.slack.com/services/T0AB12CD/B0XY98ZW/abcdefGHIJ1234567890klmn",
            ["abcdefGHIJ1234567890klmn"],
            ["/services/"],
        ),
        ("https://h.example/hook#frag-token", ["frag-token"], ["/hook"]),
        ("http://127.0.0.1:8080/ok/keyword", [], ["http://127.0.0.1:8080/ok/keyword"]),
    ],
)
def test_urls_lose_their_tokens(url: str, hidden: list[str], kept: list[str]) -> None:
    text = redact_text(f"cannot reach the receiver ({url}); retried later")
    assert redact_url(url) in text
    for part in hidden:
        assert part not in text
    for part in kept:
        assert part in text


def test_the_log_filter_redacts_messages_and_tracebacks() -> None:
    url = "https://hooks.example.com/x?token=s3cr3t"
    try:
        raise ValueError(f"bad {url}")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sending %s", (url,), None)
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert record.args == ()  # mode's handlers format an args of None as (None,)
    line = logging.Formatter().format(record)
    assert "s3cr3t" not in line and "token=***" in line
