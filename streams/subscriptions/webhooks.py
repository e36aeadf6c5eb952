"""Standard Webhooks signing and the two webhook body formats (CloudEvents JSON and Slack).

Headers follow https://www.standardwebhooks.com: ``webhook-id`` (stable per alert, so
receivers can drop a redelivered duplicate), ``webhook-timestamp`` (unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed by the
subscription's secret, the base64-decoded bytes after ``whsec_``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from streams.subscriptions.errors import DeliveryError, InvalidSecret, UnknownFormat

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "SECRET_PREFIX",
    "new_secret",
    "render_body",
    "slack_escape",
    "webhook_headers",
]

FORMATS = ("cloudevents", "slack")
DEFAULT_FORMAT = "cloudevents"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
# Why 32 bytes: Standard Webhooks asks for 24 to 64 random bytes; 32 is HMAC-SHA256's output
# size, so the key is as strong as the MAC.
_SECRET_BYTES = 32
# Why 256: ids are ours (the alert's CloudEvent id); a longer one is a bug upstream, and the
# header must stay far below the receivers' header size limits.
_MAX_ID_LEN = 256
# Why 300: longer than any real headline, far below Slack's 3000-character block text limit.
_SLACK_HEADLINE_CHARS = 300
# Why 10 items of 80 characters: a Slack field is capped at 2000 characters, and a reader scans
# a handful of sources or keywords; the rest is summarised as "+N more".
_SLACK_LIST_ITEMS = 10
_SLACK_ITEM_CHARS = 80
_JSON_CONTENT_TYPE = "application/json"


def new_secret() -> str:
    """A fresh random webhook secret in the Standard Webhooks form ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    raw = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise InvalidSecret(
            "the webhook secret is not 'whsec_' followed by base64 bytes; "
            "create a new one with new_secret() and give it to the receiver"
        )
    return key


def webhook_headers(
    webhook_id: str, secret: str | Sequence[str], body: bytes, now: float
) -> dict[str, str]:
    """The Standard Webhooks headers (and Content-Type) for ``body`` sent at unix time ``now``.
    Several secrets (a rotation's grace period) give several space-separated signatures, as
    Standard Webhooks allows: a receiver holding either secret verifies the delivery."""
    if not webhook_id or len(webhook_id) > _MAX_ID_LEN or not _is_token(webhook_id):
        raise DeliveryError(
            f"webhook id {webhook_id!r} must be 1 to {_MAX_ID_LEN} printable ASCII characters "
            "without spaces; use the alert's CloudEvent id"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryError("the webhook body is not UTF-8; render it with render_body()") from None
    seconds = math.floor(now)
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise InvalidSecret(
            "no webhook secret to sign with (it did not decrypt with this worker's key): "
            "rotate it with POST /api/subscriptions/{id}/rotate-secret"
        )
    at = datetime.fromtimestamp(seconds, tz=UTC)
    signature = " ".join(Webhook(_secret_key(key)).sign(webhook_id, at, text) for key in keys)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature,
        "content-type": _JSON_CONTENT_TYPE,
    }


def _is_token(text: str) -> bool:
    return all(33 <= ord(ch) <= 126 for ch in text)


def render_body(alert_event: dict[str, Any], format: str = DEFAULT_FORMAT) -> bytes:
    """The webhook body for one alert CloudEvent: the event itself (``cloudevents``) or a Slack
    incoming-webhook message (``slack``); compact UTF-8 JSON either way."""
    if format == "cloudevents":
        return _dumps(alert_event)
    if format == "slack":
        try:
            return _dumps(_slack_message(alert_event))
        except (KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(
                f"alert event {alert_event.get('id')!r} cannot be rendered for Slack "
                f"({type(exc).__name__}: {exc}); its data must hold subscription_name, trigger, "
                "step, story{...} and why{...}"
            ) from None
    raise UnknownFormat(f"unknown webhook format {format!r}; use one of {', '.join(FORMATS)}")


def _dumps(obj: Any) -> bytes:
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a "\ud800" escape upstream) is not UTF-8: keep it escaped.
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise DeliveryError(
            f"the alert event is not JSON-serialisable ({exc}); "
            "NaN and infinite numbers have no JSON form"
        ) from None


def slack_escape(text: str) -> str:
    """``text`` with Slack's control characters escaped, so it cannot open a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean(value: Any, limit: int) -> str:
    """One line of printable text, Slack-escaped, at most ``limit`` characters once escaped
    (cut before an escape, never inside one)."""
    text = "".join(ch for ch in " ".join(str(value).split()) if ch.isprintable())
    escaped = slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    for ch in text:
        piece = slack_escape(ch)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + "…"


def _clean_list(values: Any) -> str:
    items = [_clean(v, _SLACK_ITEM_CHARS) for v in values]
    shown = ", ".join(items[:_SLACK_LIST_ITEMS])
    more = len(items) - _SLACK_LIST_ITEMS
    if more > 0:
        shown += f" +{more} more"
    return shown or "none"


def _slack_link(url: Any) -> str | None:
    """A URL safe inside ``<url|text>``: http(s) only, Slack-escaped, ``|`` and blanks encoded."""
    text = "".join(ch for ch in str(url).strip() if ch.isprintable())
    if not text.lower().startswith(("http://", "https://")):
        return None
    return slack_escape(text.replace("|", "%7C").replace(" ", "%20"))


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _slack_message(alert_event: dict[str, Any]) -> dict[str, Any]:
    data = alert_event["data"]
    story = data["story"]
    why = data["why"]
    headline = _clean(story["headline"], _SLACK_HEADLINE_CHARS) or "(no headline)"
    urls = story["sample_urls"]
    link = _slack_link(urls[0]) if urls else None
    title = f"*<{link}|{headline}>*" if link else f"*{headline}*"
    trigger = _clean(data["trigger"], _SLACK_ITEM_CHARS)
    if data["step"] is not None:
        trigger += f" (step {_clean(data['step'], _SLACK_ITEM_CHARS)})"
    size = f"{int(story['size'])} articles, {int(story['source_count'])} sources"
    reasons = []
    if why["keywords"]:
        reasons.append(f"keywords: {_clean_list(why['keywords'])}")
    if why["semantic_score"] is not None:
        reasons.append(f"semantic score {float(why['semantic_score']):.2f}")
    if why["sources"]:
        reasons.append(f"sources: {_clean_list(why['sources'])}")
    reason = "; ".join(reasons) or "the story passed the subscription's filters"
    subscription = _clean(data["subscription_name"], _SLACK_ITEM_CHARS)
    context = (
        f"Storywatch · subscription {subscription} · story {_clean(story['story_id'], 80)} · "
        f"first seen {_clean(story['first_seen'], 40)} · last seen {_clean(story['last_seen'], 40)}"
    )
    return {
        "text": f"Storywatch {trigger}: {headline} ({size})",
        "blocks": [
            {"type": "section", "text": _mrkdwn(title)},
            {
                "type": "section",
                "fields": [
                    _mrkdwn(f"*Trigger*\n{trigger}"),
                    _mrkdwn(f"*Size*\n{size}"),
                    _mrkdwn(f"*Sources*\n{_clean_list(story['sources'])}"),
                    _mrkdwn(f"*Keywords*\n{_clean_list(story['keywords'])}"),
                ],
            },
            {"type": "section", "text": _mrkdwn(f"*Why it matched*\n{reason}")},
            {"type": "context", "elements": [_mrkdwn(context)]},
        ],
    }
