"""One webhook delivery attempt over HTTP, and the retry policy between attempts.

Every connection goes through the SSRF guard: a literal address is checked before the request,
and a host name is resolved by ``GuardedResolver``, which answers aiohttp with exactly the
addresses the guard checked (for https aiohttp still sends SNI and Host for the original name).
Redirects are not followed, proxies from the environment are not used, cookies are not kept,
and at most a few KiB of a response body are read.
"""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from config.exceptions import SettingsError
from streams.subscriptions.errors import (
    DeliveryError,
    InvalidWebhookUrl,
    UnresolvableHost,
    UnsafeAddress,
)
from streams.subscriptions.redaction import redact_text
from streams.subscriptions.ssrf import WebhookGuard

__all__ = [
    "DEFAULT_LIMIT_PER_HOST",
    "DEFAULT_TIMEOUT_S",
    "MAX_RETRY_AFTER_S",
    "Attempt",
    "GuardedResolver",
    "Outcome",
    "RetryPolicy",
    "WebhookSender",
    "guarded_session",
    "parse_retry_after",
]

Outcome = Literal["delivered", "retry", "failed"]

# Why 10 s: receivers are told to answer fast and queue their work (Standard Webhooks, GitHub
# and Slack all expect a reply within seconds); a slower one is retried later rather than
# holding a connection slot that other deliveries to the same host are waiting for.
DEFAULT_TIMEOUT_S = 10.0
# Why 4: enough parallel deliveries to keep up with a burst of alerts to one receiver, few enough
# that one slow or rate-limited receiver (Slack allows about one message a second per webhook)
# is not hammered and cannot take every connection of the sender.
DEFAULT_LIMIT_PER_HOST = 4
# Why 1 hour: a receiver may ask for a pause (Retry-After) but not park a delivery for days; the
# retry policy caps it again with its own max_s.
MAX_RETRY_AFTER_S = 3600.0
# Why 4 KiB: enough for the receiver's error message in the delivery log; the rest of a body
# is never read, so a receiver cannot stream gigabytes into memory.
_MAX_RESPONSE_BYTES = 4096
# Why 300: the part of a response body or Location worth showing in one delivery-log line.
_SNIPPET_CHARS = 300
_USER_AGENT = "Storywatch-Webhooks/1.0"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one delivery attempt: delivered, to retry later, or failed for good."""

    outcome: Outcome
    status: int | None
    error: str | None
    duration_s: float
    retry_after_s: float | None = None


def parse_retry_after(
    value: str | None, now: float, cap_s: float = MAX_RETRY_AFTER_S
) -> float | None:
    """Seconds to wait from a Retry-After header (delay seconds or an HTTP-date), clamped to
    [0, ``cap_s``]; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value), cap_s))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are in GMT
    return min(max(when.timestamp() - now, 0.0), cap_s)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter between the attempts of one delivery.

    ``delay(n)`` after the n-th failed attempt (n = 1 after the first) is
    ``rng.uniform(0, min(max_s, base_s * 2 ** (n - 1)))``. A receiver's Retry-After is a floor:
    the delay is ``max(jittered, retry_after)``, with retry_after itself capped at ``max_s``, so
    no receiver can park a delivery beyond the policy's longest wait (it is simply retried then,
    and may answer 429 again).
    """

    max_attempts: int
    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise SettingsError(
                f"webhook max_attempts must be at least 1 (got {self.max_attempts})"
            )
        if not (0 < self.base_s <= self.max_s) or not math.isfinite(self.max_s):
            raise SettingsError(
                f"webhook retry delays must satisfy 0 < base_s <= max_s < infinity "
                f"(got base_s={self.base_s}, max_s={self.max_s})"
            )

    def delay(self, attempt_number: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after attempt ``attempt_number`` (1-based) failed; in [0, max_s]."""
        # Why 62: 2**62 seconds is past any max_s worth having, and a larger exponent only
        # risks float overflow on a runaway attempt count.
        exponent = min(max(attempt_number - 1, 0), 62)
        jittered = rng.uniform(0.0, min(self.max_s, self.base_s * 2.0**exponent))
        if retry_after_s is None:
            return jittered
        return max(jittered, min(max(retry_after_s, 0.0), self.max_s))

    def exhausted(self, attempt_number: int) -> bool:
        """Whether ``attempt_number`` attempts are all the policy allows."""
        return attempt_number >= self.max_attempts


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that answers only with addresses the guard resolved and checked."""

    def __init__(self, guard: WebhookGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        answers = await self._guard.resolve_host(host, port, family)
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            {
                "hostname": host,
                "host": addr,
                "port": port,
                "family": fam,
                "proto": 0,
                "flags": flags,
            }
            for fam, addr in answers
        ]

    async def close(self) -> None:
        return None


def guarded_session(
    guard: WebhookGuard,
    timeout: aiohttp.ClientTimeout,
    *,
    auto_decompress: bool,
    **connector_options: Any,
) -> aiohttp.ClientSession:
    """The one way Storywatch reaches outside hosts (webhooks, feeds, pages): every new
    connection resolved and checked by ``guard`` (no DNS cache to serve a stale answer), no
    proxy from the environment (it would connect where the guard cannot see), no cookies
    (one host's never reach another). Must be called inside a running event loop."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(guard), use_dns_cache=False, **connector_options
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=auto_decompress,
    )


class GuardedClient:
    """An HTTP client over one guarded session (:func:`guarded_session`), opened by
    ``async with`` and closed on leaving it; a subclass says how its session is built."""

    def __init__(self, guard: WebhookGuard) -> None:
        self.guard = guard
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._session = self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _snippet(text: str) -> str:
    line = "".join(ch for ch in " ".join(text.split()) if ch.isprintable())
    return line if len(line) <= _SNIPPET_CHARS else line[: _SNIPPET_CHARS - 1] + "…"


async def _read_head(resp: aiohttp.ClientResponse) -> str:
    """At most ``_MAX_RESPONSE_BYTES`` of the body, as one short line; '' when unreadable."""
    chunks: list[bytes] = []
    left = _MAX_RESPONSE_BYTES
    try:
        while left > 0:
            chunk = await resp.content.read(left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass  # the status is what counts; the body is only shown in the log
    return _snippet(b"".join(chunks).decode("utf-8", errors="replace"))


def _redirect_target(url: URL, location: str | None) -> str:
    if not location:
        return "nowhere (no Location header)"
    try:
        return _snippet(str(url.join(URL(location))))
    except (ValueError, TypeError):
        return _snippet(location)


class WebhookSender(GuardedClient):
    """Sends webhook deliveries over one guarded aiohttp session; use ``async with``."""

    def __init__(
        self,
        guard: WebhookGuard,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        limit_per_host: int = DEFAULT_LIMIT_PER_HOST,
    ) -> None:
        super().__init__(guard)
        self.timeout_s = timeout_s
        self.limit_per_host = limit_per_host

    def _open(self) -> aiohttp.ClientSession:
        return guarded_session(
            self.guard,
            aiohttp.ClientTimeout(total=self.timeout_s),
            auto_decompress=False,  # only a few KiB are read, and never inflated
            limit_per_host=self.limit_per_host,
        )

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
        """POST ``body`` to ``url`` once: 2xx delivered; 429, 5xx, timeouts and connection
        errors retry; 3xx, other 4xx and refused addresses fail."""
        if self._session is None:
            raise DeliveryError(
                "WebhookSender is not open; use it as `async with WebhookSender(guard) as s:`"
            )
        start = time.monotonic()
        sent = CIMultiDict(
            {
                "User-Agent": _USER_AGENT,
                "Accept-Encoding": "identity",
                "Content-Type": "application/json",
            }
        )
        sent.update(headers)
        try:
            target = self.guard.parse(url)
            async with self._session.post(
                target, data=body, headers=sent, allow_redirects=False
            ) as resp:
                reply = _Reply(
                    status=resp.status,
                    reason=_snippet(resp.reason or ""),
                    head=await _read_head(resp),
                    location=resp.headers.get("Location"),
                    retry_after_s=parse_retry_after(resp.headers.get("Retry-After"), time.time()),
                )
        except (
            UnsafeAddress,
            InvalidWebhookUrl,
            UnresolvableHost,
            TimeoutError,
            aiohttp.ClientError,
        ) as exc:
            unsent, why = self._unsent(exc)
            return Attempt(unsent, None, redact_text(why), time.monotonic() - start)
        outcome, error, retry_after = reply.judge(target)
        # An error quotes URLs (a redirect's target, a client error's): their tokens never
        # reach the delivery log, the worker's log or alerts-dlq.
        error = None if error is None else redact_text(error)
        return Attempt(outcome, reply.status, error, time.monotonic() - start, retry_after)

    def _unsent(self, exc: Exception) -> tuple[Outcome, str]:
        """The outcome and message of a request that got no HTTP answer."""
        if isinstance(exc, UnsafeAddress | InvalidWebhookUrl):
            return "failed", str(exc)
        if isinstance(exc, UnresolvableHost):
            return "retry", f"{exc}; retried later"
        if isinstance(exc, aiohttp.InvalidURL):
            return "failed", f"invalid webhook URL ({exc}); fix the subscription's URL"
        if isinstance(exc, TimeoutError):
            return "retry", (
                f"the receiver did not answer within {self.timeout_s:g} s; retried later "
                "(receivers should answer at once and do their work afterwards)"
            )
        return "retry", (
            f"cannot reach the receiver ({type(exc).__name__}: {_snippet(str(exc))}); retried later"
        )


@dataclass(frozen=True, slots=True)
class _Reply:
    """What a receiver answered: status line, the head of the body, and two headers."""

    status: int
    reason: str
    head: str
    location: str | None
    retry_after_s: float | None

    def judge(self, url: URL) -> tuple[Outcome, str | None, float | None]:
        """(outcome, error, retry_after_s) for this answer to a POST to ``url``."""
        status = self.status
        if 200 <= status < 300:
            return "delivered", None, None
        answered = f"the receiver answered HTTP {status} {self.reason}".rstrip()
        if self.head:
            answered += f": {self.head}"
        if status == 429 or 500 <= status < 600:
            return "retry", f"{answered}; retried later", self.retry_after_s
        if 300 <= status < 400:
            return (
                "failed",
                f"the receiver redirected to {_redirect_target(url, self.location)} "
                f"(HTTP {status}); webhooks do not follow redirects: set the subscription's "
                "URL to the final address",
                None,
            )
        return (
            "failed",
            f"{answered}; not retried: fix the URL or the receiver, then redeliver",
            None,
        )
