"""Subscription bodies: validation (each bad value names its field), records and the API view."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.subscriptions.model import (
    DEFAULT_GROWTH_STEPS,
    DEFAULT_QUERY_THRESHOLD,
    InvalidField,
    KeywordFilter,
    SourceFilter,
    Subscription,
    SubscriptionFilter,
    SubscriptionSpec,
    WebhookTarget,
    new_subscription_id,
    parse_subscription,
)

NOW = 1_796_119_200.0  # 2026-12-01T10:00:00Z

FULL: dict[str, Any] = {
    "name": "  Central banks  ",
    "filter": {
        "keywords": {"any": ["central bank", "Fed"], "all": ["rates"], "none": ["crypto"]},
        "query": "interest rate decision",
        "query_threshold": 0.5,
        "sources": {"allow": ["Reuters", "AP"], "deny": ["Spam Daily"]},
        "min_size": 3,
        "min_sources": 2,
        "triggers": ["new_story", "emerging", "growth"],
        "growth_steps": [10, 25, 50, 100],
    },
    "delivery": {"webhook": {"url": "https://hooks.example.com/sw", "format": "slack"}},
    "enabled": False,
}


def with_filter(**fields: Any) -> dict[str, Any]:
    return {"name": "n", "filter": fields}


def with_webhook(**fields: Any) -> dict[str, Any]:
    return {"name": "n", "delivery": {"webhook": fields}}


def test_full_body() -> None:
    spec = parse_subscription(FULL)
    assert spec == SubscriptionSpec(
        name="Central banks",
        filter=SubscriptionFilter(
            keywords=KeywordFilter(("central bank", "Fed"), ("rates",), ("crypto",)),
            query="interest rate decision",
            query_threshold=0.5,
            sources=SourceFilter(("Reuters", "AP"), ("Spam Daily",)),
            min_size=3,
            min_sources=2,
            triggers=("new_story", "emerging", "growth"),
            growth_steps=(10, 25, 50, 100),
        ),
        webhook=WebhookTarget("https://hooks.example.com/sw", "slack"),
        enabled=False,
    )


def test_minimal_body_takes_the_defaults() -> None:
    spec = parse_subscription({"name": "all stories"})
    assert spec.filter == SubscriptionFilter()
    assert spec.filter.triggers == ("new_story",)
    assert spec.filter.growth_steps == DEFAULT_GROWTH_STEPS
    assert spec.filter.query_threshold == DEFAULT_QUERY_THRESHOLD
    assert spec.webhook is None  # Kafka only
    assert spec.enabled is True


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n", "filter": {}, "delivery": {}},
        {"name": "n", "filter": None, "delivery": None, "enabled": None},
        {"name": "n", "filter": {"keywords": {}, "sources": {}, "query": None}},
        {"name": "n", "delivery": {"webhook": None}},
    ],
)
def test_empty_filter_and_no_webhook_are_allowed(body: dict[str, Any]) -> None:
    spec = parse_subscription(body)
    assert spec.filter == SubscriptionFilter()
    assert spec.webhook is None


def test_format_defaults_to_cloudevents() -> None:
    spec = parse_subscription(with_webhook(url="http://localhost:8080/hook?token=abc"))
    assert spec.webhook == WebhookTarget("http://localhost:8080/hook?token=abc", "cloudevents")


@pytest.mark.parametrize("value", [-1, 1, 0, 0.25])
def test_threshold_accepts_numbers_in_range(value: float) -> None:
    threshold = parse_subscription(with_filter(query_threshold=value)).filter.query_threshold
    assert threshold == value
    assert isinstance(threshold, float)


LONG = "x" * 101

BAD = [
    # (body, field)
    ([], "body"),
    ("name", "body"),
    ({"name": "n", "colour": "red"}, "colour"),
    ({"name": "n", "id": "sub_1"}, "id"),
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"name": "n", "filter": []}, "filter"),
    (with_filter(colour=1), "filter.colour"),
    (with_filter(keywords=["a"]), "filter.keywords"),
    (with_filter(keywords={"some": ["a"]}), "filter.keywords.some"),
    (with_filter(keywords={"any": "fed"}), "filter.keywords.any"),
    (with_filter(keywords={"any": ["a", "b", 3]}), "filter.keywords.any[2]"),
    (with_filter(keywords={"all": ["a", "  "]}), "filter.keywords.all[1]"),
    (with_filter(keywords={"none": [LONG]}), "filter.keywords.none[0]"),
    (with_filter(keywords={"any": ["!!!"]}), "filter.keywords.any[0]"),
    (with_filter(keywords={"all": [f"w{i}" for i in range(101)]}), "filter.keywords.all"),
    (with_filter(query=""), "filter.query"),
    (with_filter(query=5), "filter.query"),
    (with_filter(query="q" * 1001), "filter.query"),
    (with_filter(query_threshold=True), "filter.query_threshold"),
    (with_filter(query_threshold="0.5"), "filter.query_threshold"),
    (with_filter(query_threshold=1.5), "filter.query_threshold"),
    (with_filter(query_threshold=-1.01), "filter.query_threshold"),
    (with_filter(query_threshold=math.nan), "filter.query_threshold"),
    (with_filter(query_threshold=10**400), "filter.query_threshold"),
    (with_filter(sources={"allow": "Reuters"}), "filter.sources.allow"),
    (with_filter(sources={"deny": ["ok", ""]}), "filter.sources.deny[1]"),
    (with_filter(sources={"block": []}), "filter.sources.block"),
    (with_filter(min_size=0), "filter.min_size"),
    (with_filter(min_size=True), "filter.min_size"),
    (with_filter(min_size=2.5), "filter.min_size"),
    (with_filter(min_size="3"), "filter.min_size"),
    (with_filter(min_sources=-1), "filter.min_sources"),
    (with_filter(min_sources=False), "filter.min_sources"),
    (with_filter(triggers=[]), "filter.triggers"),
    (with_filter(triggers="new_story"), "filter.triggers"),
    (with_filter(triggers=["new_story", "nope"]), "filter.triggers[1]"),
    (with_filter(triggers=["growth", "growth"]), "filter.triggers[1]"),
    (with_filter(growth_steps=[]), "filter.growth_steps"),
    (with_filter(growth_steps=list(range(1, 22))), "filter.growth_steps"),
    (with_filter(growth_steps=[10, 10]), "filter.growth_steps[1]"),
    (with_filter(growth_steps=[10, 5]), "filter.growth_steps[1]"),
    (with_filter(growth_steps=[0, 5]), "filter.growth_steps[0]"),
    (with_filter(growth_steps=[True, 5]), "filter.growth_steps[0]"),
    (with_filter(growth_steps=[5, 7.5]), "filter.growth_steps[1]"),
    ({"name": "n", "delivery": "https://x.example"}, "delivery"),
    ({"name": "n", "delivery": {"kafka": True}}, "delivery.kafka"),
    ({"name": "n", "delivery": {"webhook": "https://x.example"}}, "delivery.webhook"),
    (with_webhook(url="https://x.example", secret="s"), "delivery.webhook.secret"),
    (with_webhook(), "delivery.webhook.url"),
    (with_webhook(url=5), "delivery.webhook.url"),
    (with_webhook(url="ftp://x.example/f"), "delivery.webhook.url"),
    (with_webhook(url="javascript:alert(1)"), "delivery.webhook.url"),
    (with_webhook(url="x.example/hook"), "delivery.webhook.url"),
    (with_webhook(url="https:///hook"), "delivery.webhook.url"),
    (with_webhook(url="https://user:pass@x.example/hook"), "delivery.webhook.url"),
    (with_webhook(url="https://token@x.example/hook"), "delivery.webhook.url"),
    (with_webhook(url="https://x.example/" + "a" * 2031), "delivery.webhook.url"),
    (with_webhook(url="https://x.example/a b"), "delivery.webhook.url"),
    (with_webhook(url="https://x.example/\n"), "delivery.webhook.url"),
    (with_webhook(url="http://[::1/hook"), "delivery.webhook.url"),
    (with_webhook(url="https://x.example:99999/hook"), "delivery.webhook.url"),
    (with_webhook(url="https://x.example", format="xml"), "delivery.webhook.format"),
    ({"name": "n", "enabled": "yes"}, "enabled"),
    ({"name": "n", "enabled": 1}, "enabled"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_value_names_its_field(body: object, field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_subscription(body)
    assert caught.value.field == field
    assert str(caught.value) == caught.value.message
    assert caught.value.message  # says what is expected


def test_messages_say_what_is_expected() -> None:
    with pytest.raises(InvalidField, match=r"^filter\.min_size must be an integer >= 1, e\.g\. 3"):
        parse_subscription(with_filter(min_size=0))
    with pytest.raises(InvalidField, match="colour is not a known key: remove it"):
        parse_subscription({"name": "n", "colour": "red"})
    with pytest.raises(InvalidField, match="one of new_story, emerging, growth"):
        parse_subscription(with_filter(triggers=["nope"]))
    with pytest.raises(InvalidField, match="user name or password"):
        parse_subscription(with_webhook(url="https://u:p@x.example/"))


def test_limits_are_inclusive() -> None:
    url = "https://x.example/" + "a" * (2048 - 18)
    body = {
        "name": "n" * 200,
        "filter": {"keywords": {"any": ["p" * 100] * 100}, "query": "q" * 1000},
        "delivery": {"webhook": {"url": url}},
    }
    spec = parse_subscription(body)
    assert spec.webhook == WebhookTarget(url)
    assert len(spec.filter.keywords.any) == 100


def test_url_host_is_not_resolved_here() -> None:
    # Private and unresolvable hosts are the delivery's SSRF guard's business.
    for url in ("http://127.0.0.1/hook", "https://no-such-host.invalid/x"):
        assert parse_subscription(with_webhook(url=url)).webhook == WebhookTarget(url)


def test_new_subscription_id() -> None:
    ids = {new_subscription_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"sub_[0-9a-f]{16}", i) for i in ids)


def test_create_then_update_keeps_server_fields() -> None:
    sub = Subscription.create(parse_subscription(FULL), "alice", NOW)
    assert (sub.owner, sub.created_at, sub.updated_at) == ("alice", NOW, NOW)
    assert sub.spec == parse_subscription(FULL)
    later = sub.updated(parse_subscription({"name": "renamed"}), NOW + 60)
    assert (later.id, later.owner, later.secret, later.created_at) == (
        sub.id,
        sub.owner,
        sub.secret,
        NOW,
    )
    assert (later.name, later.updated_at, later.filter) == (
        "renamed",
        NOW + 60,
        SubscriptionFilter(),
    )
    assert later.webhook is None
    assert later.enabled is True


def test_secret_is_not_in_repr() -> None:
    sub = Subscription.create(parse_subscription(FULL), "alice", NOW)
    assert sub.secret not in repr(sub)


@pytest.mark.parametrize("body", [FULL, {"name": "kafka only"}])
def test_record_round_trip_is_exact(body: dict[str, Any]) -> None:
    sub = Subscription.create(parse_subscription(body), "alice", NOW + 0.123)
    record = json.loads(json.dumps(sub.to_record()))
    assert record["secret"] == sub.secret  # the storage form keeps it
    back = Subscription.from_record(record)
    assert back == sub
    assert back.secret == sub.secret
    assert back.to_record() == sub.to_record()


def test_public_view() -> None:
    sub = Subscription.create(parse_subscription(FULL), "alice", NOW)
    sub = sub.updated(sub.spec, NOW + 3661)
    view = json.loads(json.dumps(sub.public_view()))
    assert "secret" not in json.dumps(view)
    assert view["id"] == sub.id
    assert view["owner"] == "alice"
    assert view["created_at"] == "2026-12-01T10:00:00Z"
    assert view["updated_at"] == "2026-12-01T11:01:01Z"
    assert view["filter"] == FULL["filter"]
    assert view["delivery"] == FULL["delivery"]
    assert view["enabled"] is False


def test_public_view_can_be_sent_back() -> None:
    sub = Subscription.create(parse_subscription({"name": "n"}), "bob", NOW)
    view = sub.public_view()
    assert view["delivery"] == {}
    assert view["filter"]["query"] is None
    body = {k: view[k] for k in ("name", "filter", "delivery", "enabled")}
    assert parse_subscription(body) == sub.spec


JSON_KEYS = st.sampled_from(
    [
        "name",
        "filter",
        "delivery",
        "enabled",
        "keywords",
        "any",
        "all",
        "none",
        "query",
        "query_threshold",
        "sources",
        "allow",
        "deny",
        "min_size",
        "min_sources",
        "triggers",
        "growth_steps",
        "webhook",
        "url",
        "format",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["new_story", "growth", "slack", "https://x.example/h", "http://u@h/"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(JSON_KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_parse_raises_only_invalid_field(body: object) -> None:
    try:
        spec = parse_subscription(body)
    except InvalidField as exc:
        assert exc.field
        assert str(exc)
    else:
        assert isinstance(spec, SubscriptionSpec)
        # Whatever is accepted survives the storage round trip.
        sub = Subscription.create(spec, "o", NOW)
        assert Subscription.from_record(json.loads(json.dumps(sub.to_record()))) == sub
