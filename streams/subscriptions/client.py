"""The HTTP client of a worker's ``/api/subscriptions`` (standard library only), what
``storywatch subscriptions`` uses; usable on its own.

* :func:`build_body` turns the ``add`` options into the exact JSON body (pure);
* :class:`ApiClient` talks to ``/api/subscriptions`` and raises :class:`ApiError` with the
  API's status, message and field.

The bearer token is never printed: every message built here masks it. Nothing runs at import.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from config.exceptions import StorywatchError

__all__ = [
    "API_TOKEN_ENV",
    "API_URL_ENV",
    "DEFAULT_TIMEOUT_S",
    "ApiClient",
    "ApiConfigError",
    "ApiError",
    "RequestBodyError",
    "build_body",
    "load_json_body",
    "mask_secret",
    "parse_growth_steps",
    "printable",
    "resolve_base_url",
    "resolve_token",
]

API_URL_ENV = "STORYWATCH_API_URL"
API_TOKEN_ENV = "STORYWATCH_API_TOKEN"  # noqa: S105 -- the variable's name, not a token
# Why 10 s: every endpoint answers from in-memory tables in milliseconds; a worker that has
# not answered in 10 s is stuck or unreachable, and a person at a terminal should hear so.
DEFAULT_TIMEOUT_S = 10.0
# Why 100: one page of the list holds a screenful or two; fewer round trips for long lists.
_PAGE_SIZE = 100
# Why 16 MiB: far above any page of subscriptions or delivery log, and a cap on what a
# misdirected URL (a file server, say) can make the CLI hold in memory.
_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Why 200 characters: enough of a non-JSON error body (a proxy's HTML page) to recognise it.
_MAX_ERROR_SNIPPET = 200
_MASK = "***"

_UNREACHABLE = (
    "no Storywatch worker answers at {url}: start `storywatch worker` or set " + API_URL_ENV
)
_REFUSED_401 = (
    "the API refused the token: set STORYWATCH_API_TOKEN (or --token) to a token listed in "
    "the worker's STORYWATCH_API_TOKENS"
)


class ApiError(StorywatchError):
    """The subscriptions API failed or refused a request; ``status`` is None without a reply."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field

    def __str__(self) -> str:
        if self.field:
            return f"{self.message} (field {self.field})"
        return self.message


class ApiConfigError(StorywatchError, ValueError):
    """The API URL or token given (flag or environment) cannot be used."""


class RequestBodyError(StorywatchError, ValueError):
    """The ``add`` options (or ``--json-body``) do not make a request body."""


# --- pure helpers --------------------------------------------------------------------------


def printable(value: object) -> str:
    """``value`` as one line of text without control characters (terminal escapes)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def mask_secret(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    if not secret:
        return text
    return text.replace(secret, _MASK)


def _safe_url(url: str) -> str:
    """``url`` without a password in its user-info part (for messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:{_MASK}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def resolve_base_url(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    web_host: str | None = None,
    web_port: int | None = None,
) -> str:
    """The API base URL: ``url`` (``--url``), else ``STORYWATCH_API_URL``, else the worker's
    ``http://STORYWATCH_WEB_HOST:STORYWATCH_WEB_PORT`` (settings are loaded only then, unless
    ``web_host`` and ``web_port`` are given). No trailing slash."""
    env = os.environ if environ is None else environ
    source = "--url"
    chosen = (url or "").strip()
    if not chosen:
        source = API_URL_ENV
        chosen = env.get(API_URL_ENV, "").strip()
    if not chosen:
        if web_host is None or web_port is None:
            from config.settings import load_settings

            settings = load_settings()
            web_host = settings.web_host if web_host is None else web_host
            web_port = settings.web_port if web_port is None else web_port
        return f"http://{_connect_host(web_host)}:{web_port}"
    return _check_url(chosen, source)


def _connect_host(host: str) -> str:
    """The host to connect to for a bind address: wildcards mean this machine."""
    host = host.strip()
    if host in ("", "0.0.0.0"):  # noqa: S104 -- a bind-all address, mapped to loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _check_url(url: str, source: str) -> str:
    example = "e.g. http://127.0.0.1:6066"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise ApiConfigError(
            f"{source}={_safe_url(url)} is not a valid URL ({exc}), {example}"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiConfigError(
            f"{source}={_safe_url(url)} must be an http(s) URL with a host, {example}"
        )
    if "@" in parts.netloc:
        raise ApiConfigError(
            f"{source}={_safe_url(url)} must not hold a user name or password: give the token "
            f"with {API_TOKEN_ENV} (or --token), {example}"
        )
    if parts.query or parts.fragment:
        raise ApiConfigError(
            f"{source}={_safe_url(url)} must not have a query or fragment: give the worker's "
            f"base URL, {example}"
        )
    return url.rstrip("/")


def resolve_token(token: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The bearer token: ``token`` (``--token``), else ``STORYWATCH_API_TOKEN``, else ``""``
    (no Authorization header). Surrounding whitespace is dropped."""
    env = os.environ if environ is None else environ
    source = "--token"
    chosen = (token or "").strip()
    if not chosen:
        source = API_TOKEN_ENV
        chosen = env.get(API_TOKEN_ENV, "").strip()
    # The token goes into an HTTP header: control characters would split it (and http.client's
    # error would quote the token), non-ASCII would not compare equal on the worker.
    if any(not (" " <= ch <= "~") for ch in chosen):
        raise ApiConfigError(
            f"{source} holds a control or non-ASCII character: set it to the token exactly as "
            "listed in the worker's STORYWATCH_API_TOKENS"
        )
    return chosen


def parse_growth_steps(text: str) -> list[int]:
    """``"10,25,50"`` -> ``[10, 25, 50]`` (the API checks the values)."""
    steps: list[int] = []
    for part in text.split(","):
        item = part.strip()
        try:
            steps.append(int(item))
        except ValueError:
            raise RequestBodyError(
                f"--growth-steps: {item!r} is not a whole number; give e.g. 10,25,50"
            ) from None
    return steps


def load_json_body(text: str, source: str = "--json-body") -> dict[str, Any]:
    """Decode a ``--json-body`` file: it must hold one JSON object."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestBodyError(
            f"{source} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError:
        raise RequestBodyError(f"{source} is nested too deeply to be a subscription") from None
    if not isinstance(body, dict):
        raise RequestBodyError(
            f"{source} must hold a JSON object ({{'name': ..., 'filter': ...}}), "
            f"not {type(body).__name__}"
        )
    return body


def build_body(
    *,
    name: str | None = None,
    any_phrases: Sequence[str] = (),
    all_phrases: Sequence[str] = (),
    none_phrases: Sequence[str] = (),
    query: str | None = None,
    threshold: float | None = None,
    allow_sources: Sequence[str] = (),
    deny_sources: Sequence[str] = (),
    min_size: int | None = None,
    min_sources: int | None = None,
    triggers: Sequence[str] = (),
    growth_steps: Sequence[int] | None = None,
    webhook: str | None = None,
    webhook_format: str | None = None,
    json_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The POST/PUT body from the ``add`` options: only the parts given (no empty lists).

    With ``json_body`` that body is returned as is, and any other option is an error.
    """
    flags = {
        "--name": name is not None,
        "--any": bool(any_phrases),
        "--all": bool(all_phrases),
        "--none": bool(none_phrases),
        "--query": query is not None,
        "--threshold": threshold is not None,
        "--allow-source": bool(allow_sources),
        "--deny-source": bool(deny_sources),
        "--min-size": min_size is not None,
        "--min-sources": min_sources is not None,
        "--trigger": bool(triggers),
        "--growth-steps": growth_steps is not None,
        "--webhook": webhook is not None,
        "--format": webhook_format is not None,
    }
    if json_body is not None:
        given = [flag for flag, used in flags.items() if used]
        if given:
            raise RequestBodyError(
                f"--json-body sends the file as is: drop {', '.join(given)} "
                "(or put them in the file)"
            )
        return dict(json_body)
    if name is None:
        raise RequestBodyError("--name is required (or give the whole body with --json-body)")
    if webhook_format is not None and webhook is None:
        raise RequestBodyError("--format applies to a webhook: give --webhook URL too")

    given_filter: dict[str, Any] = {
        "keywords": _parts(any=any_phrases, all=all_phrases, none=none_phrases) or None,
        "query": query,
        "query_threshold": threshold,
        "sources": _parts(allow=allow_sources, deny=deny_sources) or None,
        "min_size": min_size,
        "min_sources": min_sources,
        "triggers": list(triggers) or None,
        "growth_steps": None if growth_steps is None else list(growth_steps),
    }
    filt = {key: value for key, value in given_filter.items() if value is not None}
    body: dict[str, Any] = {"name": name}
    if filt:
        body["filter"] = filt
    if webhook is not None:
        hook: dict[str, Any] = {"url": webhook}
        if webhook_format is not None:
            hook["format"] = webhook_format
        body["delivery"] = {"webhook": hook}
    return body


def _parts(**lists: Sequence[str]) -> dict[str, list[str]]:
    return {key: list(values) for key, values in lists.items() if values}


# --- the HTTP client -----------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the bearer token to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ApiClient:
    """A client of the worker's ``/api/subscriptions`` endpoints (JSON in, JSON out)."""

    def __init__(
        self, base_url: str, token: str = "", *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        token = "hidden" if self._token else "none"
        return f"ApiClient({self._mask(self.base_url)!r}, token={token})"

    # --- endpoints --------------------------------------------------------------------

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a new subscription; the answer includes its ``secret`` (this once only)."""
        return self._object(self._request("POST", "/api/subscriptions", body=body))

    def list_page(self, *, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """One page: ``{"subscriptions": [...], "next_cursor": str | None}``."""
        query = {"limit": limit, "cursor": cursor}
        return self._object(self._request("GET", "/api/subscriptions", query=query))

    def list_all(self, *, page_size: int = _PAGE_SIZE) -> list[dict[str, Any]]:
        """Every subscription the token may see, following ``next_cursor`` to the end."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self.list_page(limit=page_size, cursor=cursor)
            found.extend(self._objects(page, "subscriptions"))
            nxt = page.get("next_cursor")
            if nxt is None or nxt == "":
                return found
            if not isinstance(nxt, str) or nxt in seen:
                raise ApiError(
                    f"the API at {self._mask(self.base_url)} returned a bad or repeated "
                    "next_cursor: is it a Storywatch worker?"
                )
            seen.add(nxt)
            cursor = nxt

    def get(self, subscription_id: str) -> dict[str, Any]:
        """One subscription."""
        return self._object(self._request("GET", self._path(subscription_id)))

    def update(self, subscription_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a whole new body (the same shape as :meth:`create`); the secret is kept."""
        return self._object(self._request("PUT", self._path(subscription_id), body=body))

    def delete(self, subscription_id: str) -> None:
        """Delete a subscription."""
        self._request("DELETE", self._path(subscription_id))

    def test(self, subscription_id: str) -> dict[str, Any]:
        """Send a signed test alert now: ``{"webhook_id": ..., "status": "queued"}``."""
        return self._object(self._request("POST", self._path(subscription_id, "test")))

    def rotate_secret(self, subscription_id: str) -> dict[str, Any]:
        """A new signing secret: ``{"id", "secret", "previous_secret_valid_until"}`` (the old
        one keeps signing beside it until then)."""
        return self._object(self._request("POST", self._path(subscription_id, "rotate-secret")))

    def deliveries(self, subscription_id: str) -> list[dict[str, Any]]:
        """The subscription's recent webhook deliveries, as the API orders them."""
        answer = self._object(self._request("GET", self._path(subscription_id, "deliveries")))
        return self._objects(answer, "deliveries")

    # --- plumbing ---------------------------------------------------------------------

    def _path(self, subscription_id: str, *rest: str) -> str:
        if not subscription_id.strip():
            raise ApiError("the subscription id is empty: give one from `subscriptions list`")
        quoted = urllib.parse.quote(subscription_id, safe="")
        return "/".join(("/api/subscriptions", quoted, *rest))

    def _mask(self, text: str) -> str:
        return mask_secret(_safe_url(text), self._token)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, object] | None = None,
    ) -> Any:
        url = self.base_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        # The scheme was checked (http/https) by resolve_base_url.
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                raw = response.read(_MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._http_error(method, path, exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        if len(raw) > _MAX_RESPONSE_BYTES:
            raise ApiError(
                f"{method} {path} answered more than {_MAX_RESPONSE_BYTES} bytes: is "
                f"{self._mask(self.base_url)} a Storywatch worker?",
                status=status,
            )
        if status == 204 or not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ApiError(
                f"{method} {path} answered {status} with a body that is not JSON: is "
                f"{self._mask(self.base_url)} a Storywatch worker?",
                status=status,
            ) from None

    def _unreachable(self, exc: BaseException) -> ApiError:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ConnectionRefusedError | TimeoutError):
            return ApiError(_UNREACHABLE.format(url=self._mask(self.base_url)))
        detail = printable(self._mask(str(reason) or type(reason).__name__))
        if isinstance(exc, http.client.HTTPException):
            return ApiError(
                f"{self._mask(self.base_url)} does not answer as an HTTP server ({detail}): set "
                f"{API_URL_ENV} (or --url) to the worker's web address (STORYWATCH_WEB_PORT)"
            )
        return ApiError(
            f"no Storywatch worker answers at {self._mask(self.base_url)} ({detail}): start "
            f"`storywatch worker` or set {API_URL_ENV}"
        )

    def _http_error(self, method: str, path: str, exc: urllib.error.HTTPError) -> ApiError:
        status = exc.code
        try:
            raw = exc.read(_MAX_RESPONSE_BYTES)
        except OSError:
            raw = b""
        message: str | None = None
        field: str | None = None
        try:
            decoded = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            message = decoded["error"]
            if isinstance(decoded.get("field"), str):
                field = decoded["field"]
        if status == 401:
            return ApiError(_REFUSED_401, status=status)
        if 300 <= status < 400:
            target = exc.headers.get("Location", "?") if exc.headers else "?"
            return ApiError(
                f"{method} {path} was redirected ({status}) to {self._mask(str(target))}: "
                f"set {API_URL_ENV} (or --url) to the worker's own address",
                status=status,
            )
        if message is None:
            snippet = " ".join(raw.decode("utf-8", "replace").split())[:_MAX_ERROR_SNIPPET]
            message = f"{method} {path} answered {status} {exc.reason}" + (
                f": {snippet}" if snippet else ""
            )
            if status == 404:
                message += " (is this worker new enough to serve /api/subscriptions?)"
        return ApiError(
            printable(self._mask(message)),
            status=status,
            field=printable(self._mask(field)) if field else None,
        )

    def _object(self, answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise ApiError(
                f"the API at {self._mask(self.base_url)} answered {type(answer).__name__}, "
                "not a JSON object: is it a Storywatch worker?"
            )
        return answer

    def _objects(self, answer: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        items = answer.get(key)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(
                f"the API at {self._mask(self.base_url)} answered without a list of "
                f"{key}: is it a Storywatch worker?"
            )
        return items
