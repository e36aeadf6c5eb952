"""The subscription API: create, list, read, change and delete subscriptions, send a test
alert (rate-limited per owner), rotate the webhook secret, and read recent deliveries.
Every route needs a bearer token; an owner sees and changes only its own subscriptions
(another owner's id answers 404, as a missing one). An owner holds at most
STORYWATCH_MAX_SUBSCRIPTIONS_PER_OWNER subscriptions (409 past it)."""

from __future__ import annotations

import time
from typing import Any

import faust
from faust.types import TableT
from faust.web import Request, Response, View

from config.groups import WebhookSettings, WebSettings
from streams.contracts.outbox import outbox_entry
from streams.cursors import BadCursor, decode_cursor, encode_cursor
from streams.subscriptions.alert_events import test_alert
from streams.subscriptions.errors import DeliveryError
from streams.subscriptions.model import InvalidField, Subscription, parse_subscription
from streams.subscriptions.ssrf import WebhookGuard
from streams.subscriptions.store import SubscriptionStore, SubscriptionStoreNotReady
from streams.time_ranges import iso_time
from streams.web.http import ApiTokens, HttpError, json_view, read_json_body
from streams.web.limits import RateLimit

__all__ = ["register_subscription_views"]

# Why 100 / 500: a page a client renders at once; past 500 the answer is a large download.
_DEFAULT_PAGE = 100
_MAX_PAGE = 500


_CURSOR_KIND = "subscriptions"


def _after(cursor: str) -> str:
    """The subscription id a ``?cursor=`` pages on after; 400 naming ``cursor`` if not ours."""
    try:
        return str(decode_cursor(cursor, _CURSOR_KIND, ("",))[0])
    except BadCursor as exc:
        raise HttpError(400, str(exc), "cursor") from None


def _limit(request: Request) -> int:
    raw = request.query.get("limit", str(_DEFAULT_PAGE))
    try:
        limit = int(raw)
    except ValueError:
        raise HttpError(400, f"limit must be an integer 1-{_MAX_PAGE}, e.g. 50", "limit") from None
    if not 1 <= limit <= _MAX_PAGE:
        raise HttpError(400, f"limit must be an integer 1-{_MAX_PAGE}, e.g. 50", "limit")
    return limit


class SubscriptionService:
    """What the views do, apart from HTTP: storage in the global table, ownership, checks."""

    def __init__(
        self,
        store: SubscriptionStore,
        deliveries: faust.TopicT,
        guard: WebhookGuard,
        tests: RateLimit,
        *,
        web: WebSettings,
        webhooks: WebhookSettings,
        app_id: str,
    ) -> None:
        """``app_id``: the worker's STORYWATCH_APP_ID, the ``source`` of its test alerts."""
        self.subscriptions = store
        self.deliveries = deliveries
        self.web = web
        self.webhooks = webhooks
        self.app_id = app_id
        self.guard = guard
        self.tests = tests

    async def owned(self, owner: str, subscription_id: str) -> Subscription:
        await self.ready()
        record = self.subscriptions.get(subscription_id)
        if record is None or record.get("owner") != owner:
            raise HttpError(
                404,
                f"no subscription {subscription_id!r} of yours: list yours with "
                "GET /api/subscriptions (`storywatch subscriptions list`)",
                "id",
            )
        return Subscription.from_record(record)

    async def of_owner(self, owner: str) -> list[Subscription]:
        await self.ready()
        return sorted(
            (
                Subscription.from_record(r)
                for r in self.subscriptions.values()
                if r.get("owner") == owner
            ),
            key=lambda s: s.id,
        )

    async def ready(self) -> None:
        try:
            await self.subscriptions.ready()
        except SubscriptionStoreNotReady as exc:
            raise HttpError(503, str(exc), None) from None

    async def spec(self, request: Request) -> Any:
        body = await read_json_body(request, self.web.api_max_body_bytes)
        try:
            spec = parse_subscription(body)
        except InvalidField as exc:
            raise HttpError(400, exc.message, exc.field or "body") from None
        if spec.webhook is not None:
            try:
                await self.guard.check_url(spec.webhook.url)
            except DeliveryError as exc:
                raise HttpError(400, str(exc), "delivery.webhook.url") from None
        return spec

    async def store(self, subscription: Subscription) -> None:
        """Write to the compacted topic and wait until the broker has it: a 2xx means the
        subscription survives a crash, and every worker reads it from there."""
        await self.subscriptions.put(subscription.to_record())

    async def check_room(self, owner: str) -> None:
        """409 when ``owner`` already holds the cap of subscriptions: a state to change (delete
        some), not a rate to wait out, so not a 429."""
        cap = self.webhooks.max_subscriptions_per_owner
        held = sum(1 for r in self.subscriptions.values() if r.get("owner") == owner)
        if held >= cap:
            raise HttpError(
                409,
                f"you hold {held} subscriptions, the cap per owner "
                f"(STORYWATCH_MAX_SUBSCRIPTIONS_PER_OWNER={cap}): delete some with "
                "DELETE /api/subscriptions/{id} first",
                "owner",
            )

    async def rotate(self, subscription: Subscription) -> Subscription:
        rotated = subscription.rotated(time.time(), self.webhooks.webhook_secret_grace_s)
        await self.store(rotated)
        return rotated

    async def remove(self, subscription_id: str) -> None:
        await self.subscriptions.delete(subscription_id)

    async def send_test(self, subscription: Subscription) -> str:
        if subscription.webhook is None:
            raise HttpError(
                409,
                "this subscription has no webhook (Kafka only): add delivery.webhook first",
                "delivery.webhook",
            )
        alert = test_alert(
            subscription,
            source=f"/storywatch/{self.app_id}/subscriptions",
            time=time.time(),
        )
        entry = outbox_entry(alert, time.time())
        sent = await self.deliveries.send(key=entry["webhook_id"], value=entry)
        await sent
        return str(entry["webhook_id"])


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso_time(ts)


def register_subscription_views(
    app: faust.App, service: SubscriptionService, tokens: ApiTokens, delivery_log: TableT
) -> None:
    """Add the ``/api/subscriptions`` routes."""

    @app.page("/api/subscriptions")
    class SubscriptionList(View):
        @json_view
        async def get(self, request: Request) -> Response:
            owner = tokens.owner(request)
            limit = _limit(request)
            cursor = request.query.get("cursor")
            items = await service.of_owner(owner)
            if cursor:
                after = _after(cursor)
                items = [s for s in items if s.id > after]
            page = items[:limit]
            more = len(items) > limit
            return self.json(
                {
                    "subscriptions": [s.public_view() for s in page],
                    "next_cursor": (
                        encode_cursor(_CURSOR_KIND, (page[-1].id,)) if more and page else None
                    ),
                }
            )

        @json_view
        async def post(self, request: Request) -> Response:
            owner = tokens.owner(request)
            spec = await service.spec(request)
            await service.ready()
            await service.check_room(owner)
            subscription = Subscription.create(spec, owner, time.time())
            await service.store(subscription)
            return self.json(
                {**subscription.public_view(), "secret": subscription.secret}, status=201
            )

    @app.page("/api/subscriptions/{subscription_id}")
    class SubscriptionItem(View):
        @json_view
        async def get(self, request: Request, subscription_id: str) -> Response:
            owned = await service.owned(tokens.owner(request), subscription_id)
            return self.json(owned.public_view())

        @json_view
        async def put(self, request: Request, subscription_id: str) -> Response:
            current = await service.owned(tokens.owner(request), subscription_id)
            changed = current.updated(await service.spec(request), time.time())
            await service.store(changed)
            return self.json(changed.public_view())

        @json_view
        async def delete(self, request: Request, subscription_id: str) -> Response:
            await service.owned(tokens.owner(request), subscription_id)
            await service.remove(subscription_id)
            return self.bytes(b"", status=204)

    @app.page("/api/subscriptions/{subscription_id}/test")
    class SubscriptionTest(View):
        @json_view
        async def post(self, request: Request, subscription_id: str) -> Response:
            owner = tokens.owner(request)
            subscription = await service.owned(owner, subscription_id)
            service.tests.take(owner)
            webhook_id = await service.send_test(subscription)
            return self.json({"webhook_id": webhook_id, "status": "queued"}, status=202)

    @app.page("/api/subscriptions/{subscription_id}/rotate-secret")
    class SubscriptionRotateSecret(View):
        @json_view
        async def post(self, request: Request, subscription_id: str) -> Response:
            current = await service.owned(tokens.owner(request), subscription_id)
            rotated = await service.rotate(current)
            grace = rotated.previous_until
            return self.json(
                {
                    "id": rotated.id,
                    "secret": rotated.secret,
                    # The old secret signs beside the new one until then (None: there was
                    # none to keep, e.g. it did not decrypt).
                    "previous_secret_valid_until": _iso_or_none(grace),
                }
            )

    @app.page("/api/subscriptions/{subscription_id}/deliveries")
    class SubscriptionDeliveries(View):
        @json_view
        async def get(self, request: Request, subscription_id: str) -> Response:
            await service.owned(tokens.owner(request), subscription_id)
            recent = list(delivery_log.get(subscription_id) or [])
            return self.json({"deliveries": list(reversed(recent))})
