"""The alert views: ``GET /api/alerts`` (history by time, paged with ``next_cursor``) and
``GET /api/alerts/stream`` (Server-Sent Events, resumable with ``Last-Event-ID``). An owner
gets its own alerts."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import faust
from aiohttp import web
from aiohttp_sse import sse_response
from faust.web import Request, Response, View

from streams.alert_history import (
    AlertFanout,
    AlertReader,
    decode_alert_cursor,
    encode_alert_cursor,
)
from streams.cursors import BadCursor
from streams.exceptions import TimeRangeError
from streams.time_ranges import now_ms, parse_instant
from streams.web.http import ApiTokens, HttpError, json_view, last_event_id
from streams.web.limits import StreamSlots, WorkGate

__all__ = ["cursor_offset", "register_alert_views"]

# Why 100 / 1,000: a page of recent alerts; past 1,000 use since/until windows.
_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000
# The ids this stream sends: the alert's offset on the topic (at most 19 digits: an int64);
# -1 resumes before the first (every retained alert of the owner).
_OFFSET_ID = re.compile(r"-1|[0-9]{1,19}")


def _time_ms(request: Request, name: str, now: int) -> int | None:
    """``?since=`` / ``?until=``: ISO-8601 with an offset, a date, a relative time (``24h``)
    or epoch seconds (streams/time_ranges.py, as the CLI reads them)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_instant(raw, now=now, name=name)
    except TimeRangeError as exc:
        raise HttpError(400, str(exc), name) from None


def cursor_offset(raw: str | None) -> int | None:
    """``?cursor=``: the offset a page resumes at (None: from the window's start); 400
    naming ``cursor`` for one this API did not hand out."""
    if not raw:
        return None
    try:
        return decode_alert_cursor(raw)
    except BadCursor as exc:
        raise HttpError(400, str(exc), "cursor") from None


def _owned_by(owner: str) -> Any:
    return lambda alert: (alert.get("data") or {}).get("owner") == owner


def register_alert_views(  # noqa: PLR0917 (the views' parts, each passed in once)
    app: faust.App,
    reader: AlertReader,
    fanout: AlertFanout,
    tokens: ApiTokens,
    slots: StreamSlots,
    history_gate: WorkGate,
) -> None:
    """Add ``/api/alerts`` and ``/api/alerts/stream``. A history request reads at most
    ``limit`` alerts, 10,000 records and 10 s (streams/alert_history.py), and at most
    ``history_gate.limit`` run at once; every stream shares the one ``fanout`` reader."""

    @app.page("/api/alerts")
    class Alerts(View):
        @json_view
        async def get(self, request: Request) -> Response:
            owner = tokens.owner(request)
            clock = now_ms()
            since, until = _time_ms(request, "since", clock), _time_ms(request, "until", clock)
            if since is not None and until is not None and until < since:
                raise HttpError(400, "until is before since: swap them", "until")
            try:
                limit = int(request.query.get("limit", _DEFAULT_LIMIT))
            except ValueError:
                limit = 0
            if not 1 <= limit <= _MAX_LIMIT:
                raise HttpError(400, f"limit must be an integer 1-{_MAX_LIMIT}", "limit")
            after = cursor_offset(request.query.get("cursor"))
            with history_gate.enter():
                found, resume = await reader.history(since, until, limit, _owned_by(owner), after)
            return self.json(
                {
                    "alerts": [{"offset": offset, **alert} for offset, alert in found],
                    "next_cursor": None if resume is None else encode_alert_cursor(resume),
                }
            )

    @app.page("/api/alerts/stream")
    class AlertStream(View):
        @json_view
        async def get(self, request: Request) -> Response:
            owner = tokens.owner(request, query_token=True)
            native = cast(web.Request, request)
            last = last_event_id(
                request, _OFFSET_ID, "'1042', an offset on the alerts topic, or -1 for all"
            )
            after = int(last) if last else None
            with slots.hold("alerts", owner):
                async with sse_response(native) as stream:
                    alive = stream.is_connected
                    async for offset, alert in fanout.follow(after, _owned_by(owner), alive):
                        await stream.send(
                            json.dumps(alert, separators=(",", ":")),
                            id=str(offset),
                            event="alert",
                        )
                return cast(Response, stream)
