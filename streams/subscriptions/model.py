"""Alert subscriptions: the validated request body, the stored record and the API view.

Pure: no I/O. :func:`parse_subscription` checks a decoded JSON body and raises
:class:`InvalidField`, naming the dotted path of the first bad value, for anything else.
``null`` is the same as leaving an optional key out (so the API view can be sent back).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from config.exceptions import StorywatchError
from streams.subscriptions.webhooks import FORMATS, new_secret
from streams.time_ranges import iso_time

__all__ = [
    "DEFAULT_GROWTH_STEPS",
    "DEFAULT_QUERY_THRESHOLD",
    "DEFAULT_TRIGGERS",
    "TRIGGERS",
    "InvalidField",
    "KeywordFilter",
    "SourceFilter",
    "Subscription",
    "SubscriptionFilter",
    "SubscriptionSpec",
    "WebhookTarget",
    "new_subscription_id",
    "parse_subscription",
]

TRIGGERS = ("new_story", "emerging", "growth")
DEFAULT_TRIGGERS = ("new_story",)
# Why these steps: roughly x2.5 apart, so a story that keeps growing alerts a handful of times
# (a wire story re-reported by 100+ outlets), not on every article.
DEFAULT_GROWTH_STEPS = (10, 25, 50, 100)
# Why 0.55: the best F1 of "story matches query" vs "same gold story" on the dev data, with a
# headline of each gold story as the query, scored against every story's centroid built from
# its other articles (all-MiniLM-L6-v2, 5 seeded query sets). Both files pooled: P 0.780,
# R 0.826, F1 0.803 (0.50: F1 0.783, 0.60: 0.786); UCI alone 0.863 and ECB+ alone 0.752, both
# best at 0.55 too. A headline is only a proxy for what users type: a short typed query may
# score lower against a centroid, so a subscription with a terse query may need a lower one.
# Measured by `.venv/bin/python bench/query_threshold.py` (bench/query_threshold.py).
DEFAULT_QUERY_THRESHOLD = 0.55

# Why these caps: bounded work per story event and bounded record size, far above what a
# person writes by hand (a long watch list of names is tens of phrases, not hundreds).
_MAX_NAME = 200
_MAX_PHRASE = 100
_MAX_PHRASES = 100
_MAX_QUERY = 1000
# Why 500 sources and 200 characters: an allow list of every outlet a team trusts fits;
# outlet names are short ("Los Angeles Times"), a URL host at most 253 characters is rare.
_MAX_SOURCE = 200
_MAX_SOURCES = 500
_MAX_GROWTH_STEPS = 20
# Why 2048: the de-facto URL limit of browsers and proxies; a longer webhook URL is a mistake.
_MAX_URL = 2048

_BODY_KEYS = ("name", "filter", "delivery", "enabled")
_FILTER_KEYS = (
    "keywords",
    "query",
    "query_threshold",
    "sources",
    "min_size",
    "min_sources",
    "triggers",
    "growth_steps",
)
_KEYWORD_KEYS = ("any", "all", "none")
_SOURCE_KEYS = ("allow", "deny")
_DELIVERY_KEYS = ("webhook",)
_WEBHOOK_KEYS = ("url", "format")
# One Unicode letter or digit: matching.phrase_tokens reads words as runs of these.
_WORD = re.compile(r"[^\W_]")
# bool before int: True is an int to Python, a boolean to JSON.
_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "an array"),
    (dict, "an object"),
)


class InvalidField(StorywatchError, ValueError):
    """One value of a subscription body is invalid; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class KeywordFilter:
    """Phrases (as written, stripped) matched as whole words on the story's articles."""

    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every phrase of the three lists."""
        return self.any + self.all + self.none


@dataclass(frozen=True, slots=True)
class SourceFilter:
    """Source names (case-insensitive, exact) a story must or must not be carried by.

    ``allow``: the story matches only once at least one of its sources is in ``allow``.
    ``deny``: the story matches only while at least one of its sources is NOT in ``deny``;
    a story carried only by denied outlets never matches, and one denied outlet joining a
    story that others carry does not stop it matching.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """What a story must satisfy (every part, AND); the empty filter matches every story."""

    keywords: KeywordFilter = KeywordFilter()
    query: str | None = None
    query_threshold: float = DEFAULT_QUERY_THRESHOLD
    sources: SourceFilter = SourceFilter()
    min_size: int = 1
    min_sources: int = 1
    triggers: tuple[str, ...] = DEFAULT_TRIGGERS
    growth_steps: tuple[int, ...] = DEFAULT_GROWTH_STEPS

    def to_json(self) -> dict[str, Any]:
        """The request shape (every key present), which :func:`parse_subscription` accepts."""
        return {
            "keywords": {
                "any": list(self.keywords.any),
                "all": list(self.keywords.all),
                "none": list(self.keywords.none),
            },
            "query": self.query,
            "query_threshold": self.query_threshold,
            "sources": {"allow": list(self.sources.allow), "deny": list(self.sources.deny)},
            "min_size": self.min_size,
            "min_sources": self.min_sources,
            "triggers": list(self.triggers),
            "growth_steps": list(self.growth_steps),
        }


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where and how a subscription's alerts are POSTed (the host is checked at delivery)."""

    url: str
    format: str = "cloudevents"


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What a client sends (POST/PUT): everything but the server-owned fields."""

    name: str
    filter: SubscriptionFilter = SubscriptionFilter()
    webhook: WebhookTarget | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Subscription:
    """A stored subscription: the client's spec plus id, owner, signing secret and times."""

    id: str
    name: str
    owner: str
    filter: SubscriptionFilter
    webhook: WebhookTarget | None
    secret: str = field(repr=False)
    enabled: bool
    created_at: float
    updated_at: float
    # The secret before the latest rotation, which still signs beside ``secret`` until
    # ``previous_until`` (unix time): receivers switch to the new one meanwhile.
    previous_secret: str | None = field(default=None, repr=False)
    previous_until: float | None = None

    @classmethod
    def create(cls, spec: SubscriptionSpec, owner: str, now: float) -> Subscription:
        """A new subscription with a fresh id and webhook secret."""
        return cls(
            id=new_subscription_id(),
            name=spec.name,
            owner=owner,
            filter=spec.filter,
            webhook=spec.webhook,
            secret=new_secret(),
            enabled=spec.enabled,
            created_at=now,
            updated_at=now,
        )

    def updated(self, spec: SubscriptionSpec, now: float) -> Subscription:
        """This subscription with ``spec`` applied (same id, owner, secret and created_at)."""
        return replace(
            self,
            name=spec.name,
            filter=spec.filter,
            webhook=spec.webhook,
            enabled=spec.enabled,
            updated_at=now,
        )

    def rotated(self, now: float, grace_s: float) -> Subscription:
        """A fresh secret; the current one keeps signing beside it for ``grace_s`` seconds.
        (A rotation within the grace period drops the secret before the current one.)"""
        return replace(
            self,
            secret=new_secret(),
            previous_secret=self.secret or None,
            previous_until=now + grace_s if self.secret else None,
            updated_at=now,
        )

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets a delivery at unix time ``now`` is signed with: the current one, and
        the previous one while its grace period runs (empty when the secret is unreadable)."""
        found = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            found.append(self.previous_secret)
        return found

    @property
    def spec(self) -> SubscriptionSpec:
        """The client-owned part."""
        return SubscriptionSpec(self.name, self.filter, self.webhook, self.enabled)

    def delivery_json(self) -> dict[str, Any]:
        """``{"webhook": {"url", "format"}}``, or ``{}`` for Kafka-only delivery."""
        if self.webhook is None:
            return {}
        return {"webhook": {"url": self.webhook.url, "format": self.webhook.format}}

    def to_record(self) -> dict[str, Any]:
        """The storage form (JSON-able, includes the secret)."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "filter": self.filter.to_json(),
            "delivery": self.delivery_json(),
            "secret": self.secret,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            **(
                {
                    "previous_secret": self.previous_secret,
                    "previous_secret_until": self.previous_until,
                }
                if self.previous_secret
                else {}
            ),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Subscription:
        """Inverse of :meth:`to_record` (the filter and delivery are validated again)."""
        return cls(
            id=str(record["id"]),
            name=_name(record["name"]),
            owner=str(record["owner"]),
            filter=_filter(record["filter"], "filter"),
            webhook=_delivery(record["delivery"], "delivery"),
            # No secret: one that did not decrypt here (streams/subscriptions/store.py), or a
            # reader that never signs (a replay): it is never sent.
            secret=str(record.get("secret") or ""),
            enabled=bool(record["enabled"]),
            created_at=float(record["created_at"]),
            updated_at=float(record["updated_at"]),
            previous_secret=str(record["previous_secret"])
            if record.get("previous_secret")
            else None,
            previous_until=(
                float(record["previous_secret_until"])
                if record.get("previous_secret_until") is not None
                else None
            ),
        )

    def public_view(self) -> dict[str, Any]:
        """What the API returns: no secret, the filter in request shape, times ISO-8601 UTC."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "filter": self.filter.to_json(),
            "delivery": self.delivery_json(),
            "enabled": self.enabled,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def new_subscription_id() -> str:
    """``sub_`` + 16 random hex characters."""
    return "sub_" + secrets.token_hex(8)


def parse_subscription(body: object) -> SubscriptionSpec:
    """Validate a decoded POST/PUT body; raise :class:`InvalidField` for the first bad value."""
    data = _object(body, "", _BODY_KEYS)
    return SubscriptionSpec(
        name=_name(data.get("name")),
        filter=_filter(data.get("filter"), "filter"),
        webhook=_delivery(data.get("delivery"), "delivery"),
        enabled=_enabled(data.get("enabled")),
    )


def _iso(ts: float) -> str:
    return iso_time(ts, precision="s")


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    for types, name in _JSON_KINDS:
        if isinstance(value, types):
            return name
    return type(value).__name__


def _got(value: object) -> str:
    """What was sent instead, for error messages."""
    if isinstance(value, str):
        return f" (got {len(value.strip())} characters)"
    return f" (got {_kind(value)})"


def _object(value: object, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as an object holding only ``keys``."""
    where = path or "the body"
    if not isinstance(value, dict):
        raise InvalidField(
            path or "body", f"{where} must be a JSON object with keys {', '.join(keys)}"
        )
    for key in value:
        if key not in keys:
            name = key if isinstance(key, str) and key else repr(key)
            raise InvalidField(
                _path(path, name),
                f"{_path(path, name)} is not a known key: remove it ({where} takes "
                f"{', '.join(keys)})",
            )
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > _MAX_NAME:
        raise InvalidField(
            "name",
            f"name is required: a non-empty string of at most {_MAX_NAME} characters, "
            f'e.g. "Central bank moves"{_got(value)}',
        )
    return value.strip()


def _enabled(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise InvalidField("enabled", f"enabled must be true or false (got {_kind(value)})")
    return value


def _strings(
    value: object, path: str, *, max_items: int, max_chars: int, example: str, words: bool
) -> tuple[str, ...]:
    """A list of non-empty stripped strings; ``words``: each must hold a letter or digit."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidField(
            path, f"{path} must be an array of strings, e.g. [{example}] (got {_kind(value)})"
        )
    if len(value) > max_items:
        raise InvalidField(path, f"{path} has {len(value)} entries: at most {max_items}")
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        text = item.strip() if isinstance(item, str) else ""
        if not text or len(text) > max_chars:
            raise InvalidField(
                where,
                f"{where} must be a non-empty string of at most {max_chars} characters, "
                f"e.g. {example}{_got(item)}",
            )
        if words and not _WORD.search(text):
            raise InvalidField(
                where, f"{where} must contain a letter or digit: it is matched as whole words"
            )
        out.append(text)
    return tuple(out)


def _lists(
    value: object,
    path: str,
    keys: tuple[str, ...],
    *,
    max_items: int,
    max_chars: int,
    example: str,
    words: bool,
) -> dict[str, tuple[str, ...]]:
    """The object at ``path`` as its lists of strings, one per key (all empty when absent)."""
    data = {} if value is None else _object(value, path, keys)
    return {
        key: _strings(
            data.get(key),
            _path(path, key),
            max_items=max_items,
            max_chars=max_chars,
            example=example,
            words=words,
        )
        for key in keys
    }


def _keywords(value: object, path: str) -> KeywordFilter:
    lists = _lists(
        value,
        path,
        _KEYWORD_KEYS,
        max_items=_MAX_PHRASES,
        max_chars=_MAX_PHRASE,
        example='"central bank"',
        words=True,
    )
    return KeywordFilter(any=lists["any"], all=lists["all"], none=lists["none"])


def _sources(value: object, path: str) -> SourceFilter:
    lists = _lists(
        value,
        path,
        _SOURCE_KEYS,
        max_items=_MAX_SOURCES,
        max_chars=_MAX_SOURCE,
        example='"Reuters"',
        words=False,
    )
    return SourceFilter(allow=lists["allow"], deny=lists["deny"])


def _query(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > _MAX_QUERY:
        raise InvalidField(
            path,
            f"{path} must be a non-empty string of at most {_MAX_QUERY} characters, e.g. "
            f'"interest rate decision" (or omit it){_got(value)}',
        )
    return value.strip()


def _threshold(value: object, path: str) -> float:
    if value is None:
        return DEFAULT_QUERY_THRESHOLD
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise InvalidField(
            path,
            f"{path} must be a number from -1 to 1 (cosine similarity), e.g. "
            f"{DEFAULT_QUERY_THRESHOLD} (the default)",
        )
    return float(value)


def _positive_int(value: object, path: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidField(path, f"{path} must be an integer >= 1, e.g. 3 (got {value!r:.40})")
    return value


def _triggers(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_TRIGGERS
    if not isinstance(value, list) or not value:
        raise InvalidField(
            path, f'{path} must be a non-empty array of {", ".join(TRIGGERS)}, e.g. ["new_story"]'
        )
    seen: list[str] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if item not in TRIGGERS:
            raise InvalidField(where, f"{where} must be one of {', '.join(TRIGGERS)}")
        if item in seen:
            raise InvalidField(where, f"{where} repeats {item!r}: list each trigger once")
        seen.append(item)
    return tuple(seen)


def _growth_steps(value: object, path: str) -> tuple[int, ...]:
    if value is None:
        return DEFAULT_GROWTH_STEPS
    if not isinstance(value, list) or not 1 <= len(value) <= _MAX_GROWTH_STEPS:
        raise InvalidField(
            path,
            f"{path} must be an array of 1 to {_MAX_GROWTH_STEPS} increasing story sizes, "
            f"e.g. {list(DEFAULT_GROWTH_STEPS)}",
        )
    steps: list[int] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise InvalidField(where, f"{where} must be an integer >= 1 (a story size)")
        if steps and item <= steps[-1]:
            raise InvalidField(
                where, f"{where} must be greater than {steps[-1]}: steps strictly increase"
            )
        steps.append(item)
    return tuple(steps)


def _filter(value: object, path: str) -> SubscriptionFilter:
    if value is None:
        return SubscriptionFilter()
    data = _object(value, path, _FILTER_KEYS)
    return SubscriptionFilter(
        keywords=_keywords(data.get("keywords"), _path(path, "keywords")),
        query=_query(data.get("query"), _path(path, "query")),
        query_threshold=_threshold(data.get("query_threshold"), _path(path, "query_threshold")),
        sources=_sources(data.get("sources"), _path(path, "sources")),
        min_size=_positive_int(data.get("min_size"), _path(path, "min_size"), 1),
        min_sources=_positive_int(data.get("min_sources"), _path(path, "min_sources"), 1),
        triggers=_triggers(data.get("triggers"), _path(path, "triggers")),
        growth_steps=_growth_steps(data.get("growth_steps"), _path(path, "growth_steps")),
    )


def _delivery(value: object, path: str) -> WebhookTarget | None:
    if value is None:
        return None
    data = _object(value, path, _DELIVERY_KEYS)
    hook = data.get("webhook")
    if hook is None:
        return None
    where = _path(path, "webhook")
    fields = _object(hook, where, _WEBHOOK_KEYS)
    url = _url(fields.get("url"), _path(where, "url"))
    fmt = fields.get("format")
    if fmt is None:
        fmt = "cloudevents"
    if fmt not in FORMATS:
        raise InvalidField(
            _path(where, "format"), f"{where}.format must be one of {', '.join(FORMATS)}"
        )
    return WebhookTarget(url, fmt)


def _url(value: object, path: str) -> str:
    """An absolute http(s) URL with a host and no credentials (not resolved here)."""
    example = "e.g. https://hooks.example.com/storywatch"
    if not isinstance(value, str) or not value:
        raise InvalidField(path, f"{path} is required: an http or https URL, {example}")
    if len(value) > _MAX_URL:
        raise InvalidField(path, f"{path} is {len(value)} characters long: at most {_MAX_URL}")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise InvalidField(path, f"{path} must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidField(path, f"{path} is not a valid URL ({exc}), {example}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidField(path, f"{path} must start with https:// or http://, {example}")
    if "@" in parts.netloc:
        raise InvalidField(
            path,
            f"{path} must not hold a user name or password (user:pass@): the webhook is "
            "authenticated by its signature; put any token in the path or query",
        )
    if not parts.hostname:
        raise InvalidField(path, f"{path} has no host, {example}")
    return value
