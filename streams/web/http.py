"""The HTTP conventions of every API view: JSON errors, bearer tokens, request body limits.

Errors are ``{"error": "...", "field": "..."}`` with the right status; a view raises
:class:`HttpError` and :func:`json_view` turns it into that response.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from aiohttp import web
from faust.web import Request, Response, View

from config.exceptions import StorywatchError
from config.groups import WebSettings

__all__ = [
    "ApiTokens",
    "HttpError",
    "error_response",
    "json_view",
    "last_event_id",
    "read_json_body",
    "read_tokens",
]


# Why 8: a shorter token is guessable; real ones are 32+ random characters.
_MIN_TOKEN_CHARS = 8
# Why 16 KiB: reads a small body in one step and a large one in steps that stop at the limit.
_CHUNK_BYTES = 16 * 1024


class HttpError(StorywatchError):
    """An API request that cannot be served: a status, a message and the field at fault."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.headers = headers or {}  # e.g. Retry-After on a 429


# Why 64: the ids the streams send are under 30 characters (an offset; a feed id and a
# sequence number); a longer one is not ours and is refused before anything is parsed.
_MAX_EVENT_ID_CHARS = 64


def last_event_id(request: Request, shape: re.Pattern[str], example: str) -> str | None:
    """The ``Last-Event-ID`` header (or ``?last_event_id=``) of an SSE request, checked
    before the stream starts: 400 naming ``Last-Event-ID`` unless it has ``shape``."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if not raw:
        return None
    if len(raw) > _MAX_EVENT_ID_CHARS or not shape.fullmatch(raw):
        raise HttpError(
            400,
            f"Last-Event-ID is not an id this stream sends (they look like {example}): "
            "reconnect without it to get only new events",
            "Last-Event-ID",
        )
    return raw


def error_response(
    view: View,
    status: int,
    error: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    return view.json(body, status=status, headers=dict(headers or {}))


_V = TypeVar("_V", bound=View)
_Handler = Callable[..., Awaitable[Response]]


def json_view(handler: _Handler) -> _Handler:
    """Wrap a view method: an :class:`HttpError` becomes its JSON error response."""

    @functools.wraps(handler)
    async def wrapped(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(self, request, *args, **kwargs)
        except HttpError as exc:
            return error_response(self, exc.status, exc.error, exc.field, exc.headers)

    return wrapped


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 past ``max_bytes`` (read no further), 400 if not JSON."""
    native = cast(web.Request, request)  # Faust's aiohttp driver hands over aiohttp's request
    declared = native.content_length
    if declared is not None and declared > max_bytes:
        raise HttpError(
            413, f"request body of {declared} bytes is over the {max_bytes}-byte limit", "body"
        )
    chunks: list[bytes] = []
    size = 0
    while chunk := await native.content.read(_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:  # a chunked body with no length: stop reading at the limit
            raise HttpError(413, f"request body is over the {max_bytes}-byte limit", "body")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = str(exc)[:80]
        raise HttpError(400, f"body is not JSON ({detail}); send a JSON object", "body") from None


class ApiTokens:
    """The bearer tokens of the API and their owners, read on first use (never at import).
    Tokens are compared in constant time and never appear in logs, errors or responses."""

    def __init__(self, web: WebSettings) -> None:
        self._web = web
        self._loaded: dict[bytes, str] | None = None

    def __repr__(self) -> str:
        return "ApiTokens(hidden)"

    @property
    def _owner_by_token(self) -> dict[bytes, str]:
        if self._loaded is None:
            self._loaded = {t.encode(): o for t, o in read_tokens(self._web).items()}
        return self._loaded

    def owner(self, request: Request, *, query_token: bool = False) -> str:
        """The owner whose token the request carries; 401 when none or unknown.
        ``query_token``: also accept ``?access_token=`` (browsers' EventSource cannot send
        headers; only the SSE stream allows it)."""
        if not self._owner_by_token:
            raise HttpError(
                401,
                "this worker has no API tokens: set STORYWATCH_API_TOKENS=owner:token "
                "(or STORYWATCH_API_TOKENS_FILE) and restart it",
                "authorization",
            )
        header = request.headers.get("Authorization", "")
        if not header and query_token and request.query.get("access_token"):
            header = "Bearer " + request.query["access_token"]
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HttpError(
                401, "missing bearer token: send 'Authorization: Bearer <token>'", "authorization"
            )
        candidate = presented.strip().encode()
        found: str | None = None
        for token, owner in self._owner_by_token.items():
            # Every token is compared, so the time taken says nothing about which matched.
            if hmac.compare_digest(token, candidate):
                found = owner
        if found is None:
            raise HttpError(
                401, "unknown bearer token: use a token from STORYWATCH_API_TOKENS", "authorization"
            )
        return found


def read_tokens(web: WebSettings) -> dict[str, str]:
    """token -> owner from STORYWATCH_API_TOKENS ("owner:token,...") and the lines (or
    comma-separated entries) of STORYWATCH_API_TOKENS_FILE; # starts a comment line."""
    specs: list[str] = []
    if web.api_tokens is not None:
        specs += web.api_tokens.get_secret_value().split(",")
    if web.api_tokens_file is not None:
        path = Path(web.api_tokens_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StorywatchError(
                f"STORYWATCH_API_TOKENS_FILE={path} cannot be read ({exc.strerror}): "
                "fix the path or unset it"
            ) from exc
        specs += [
            p
            for line in text.splitlines()
            if not line.lstrip().startswith("#")
            for p in line.split(",")
        ]
    tokens: dict[str, str] = {}
    for number, spec in enumerate(s.strip() for s in specs):
        if not spec:
            continue
        owner, sep, token = spec.partition(":")
        if not sep or not owner.strip() or len(token.strip()) < _MIN_TOKEN_CHARS:
            raise StorywatchError(
                f"API token entry {number + 1} is not owner:token with a token of "
                f"{_MIN_TOKEN_CHARS}+ characters: fix STORYWATCH_API_TOKENS / "
                "STORYWATCH_API_TOKENS_FILE"
            )
        tokens[token.strip()] = owner.strip()
    return tokens
