"""Polite, guarded HTTP GETs of feeds and article pages.

- Every hop (up to 5 redirects) passes the SSRF guard of the webhooks
  (:mod:`streams.subscriptions.ssrf`): the URL is checked up front and every connection is
  resolved by the guard's resolver, so private and loopback addresses are refused unless the
  host is in ``STORYWATCH_FEED_ALLOW_HOSTS``. No proxy from the environment, no cookies.
- Conditional GET (If-None-Match / If-Modified-Since); gzip and deflate.
- One request at a time per host and at least ``host_delay_s`` between two.
- Connect, read and total timeouts; the body read stops at ``max_bytes`` (decompressed).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp
from yarl import URL

from config.groups import FeedSettings
from config.settings import setting_default
from streams.feeds.errors import (
    FeedGone,
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    InvalidFeedUrl,
)
from streams.subscriptions.errors import InvalidWebhookUrl, UnresolvableHost, UnsafeAddress
from streams.subscriptions.sender import GuardedClient, guarded_session, parse_retry_after
from streams.subscriptions.ssrf import WebhookGuard

__all__ = [
    "FEED_ALLOW_HOSTS_ENV",
    "FetchOutcome",
    "FetchPolicy",
    "FetchResult",
    "HostGate",
    "PageFetcher",
    "StatusError",
    "Validators",
    "feed_guard",
    "outcome_of",
    "parse_max_age",
]

FEED_ALLOW_HOSTS_ENV = "STORYWATCH_FEED_ALLOW_HOSTS"
FetchOutcome = Literal["ok", "not_modified", "error", "refused", "too_large", "timeout"]

# Why 5: browsers follow 20, but a feed that needs more than a few hops is misconfigured, and
# every hop is another request to a host we may not know.
MAX_REDIRECTS = 5
# Why 64 KiB: large enough that a 10 MB feed is ~150 reads, small enough that the size cap
# overshoots by at most this much.
_CHUNK_BYTES = 64 * 1024
# Why 1 day: a server may ask us to wait (Retry-After), but not to stop for a week.
_MAX_RETRY_AFTER_S = 86400.0
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_AGE = re.compile(r"(?:^|[,\s])(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.5, */*;q=0.1"
)


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """The limits of every fetch (from the STORYWATCH_FEED_* settings)."""

    user_agent: str
    # The settings' own defaults (config/settings.py says why each).
    max_bytes: int = setting_default("feed_max_bytes")
    connect_timeout_s: float = setting_default("feed_connect_timeout_s")
    read_timeout_s: float = setting_default("feed_read_timeout_s")
    total_timeout_s: float = setting_default("feed_total_timeout_s")
    host_delay_s: float = setting_default("feed_host_delay_s")
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def from_settings(cls, feeds: FeedSettings) -> FetchPolicy:
        return cls(
            user_agent=f"Storywatch-Feeds/1.0 (+{feeds.feed_contact})",
            max_bytes=feeds.feed_max_bytes,
            connect_timeout_s=feeds.feed_connect_timeout_s,
            read_timeout_s=feeds.feed_read_timeout_s,
            total_timeout_s=feeds.feed_total_timeout_s,
            host_delay_s=feeds.feed_host_delay_s,
        )


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said last time, sent back so an unchanged feed costs a 304."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        sent = {}
        if self.etag:
            sent["If-None-Match"] = self.etag
        if self.last_modified:
            sent["If-Modified-Since"] = self.last_modified
        return sent


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A 200 or a 304 (``body`` None) from the final URL after redirects."""

    status: int
    url: str
    body: bytes | None
    content_type: str | None
    validators: Validators
    max_age_s: float | None
    duration_s: float
    redirects: int = 0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    location: str | None
    headers: Mapping[str, str]
    body: bytes | None


class StatusError(FetchError):
    """The server answered an HTTP error (4xx/5xx); ``retry_after_s`` when it asked to wait."""

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def parse_max_age(cache_control: str | None) -> float | None:
    """Seconds of Cache-Control max-age (or s-maxage), None when absent."""
    if not cache_control:
        return None
    found = _MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else None


def outcome_of(exc: BaseException | None, result: FetchResult | None = None) -> FetchOutcome:
    """The metric label of a fetch that ended with ``exc`` (or ``result``)."""
    if exc is None:
        return "not_modified" if result is not None and result.not_modified else "ok"
    if isinstance(exc, FetchRefused):
        return "refused"
    if isinstance(exc, FetchTooLarge):
        return "too_large"
    if isinstance(exc, FetchTimeout):
        return "timeout"
    return "error"


def feed_guard(allow_hosts: frozenset[str]) -> WebhookGuard:
    """The webhooks' SSRF guard, with the feeds' allow list and wording."""
    return WebhookGuard(allow_hosts, purpose="feeds", allow_env=FEED_ALLOW_HOSTS_ENV)


class HostGate:
    """One request at a time per host, and at least ``delay_s`` between the end of one and the
    start of the next."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    def lock(self, host: str) -> asyncio.Lock:
        return self._locks.setdefault(host, asyncio.Lock())

    async def wait_turn(self, host: str) -> None:
        """Call holding ``lock(host)``: sleeps until the host's delay has passed."""
        last = self._last.get(host)
        if last is not None:
            wait = last + self.delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def done(self, host: str) -> None:
        self._last[host] = time.monotonic()


class PageFetcher(GuardedClient):
    """Fetches feeds and pages over one guarded session; use ``async with``."""

    def __init__(self, policy: FetchPolicy, guard: WebhookGuard) -> None:
        super().__init__(guard)
        self.policy = policy
        self.gate = HostGate(policy.host_delay_s)

    def _open(self) -> aiohttp.ClientSession:
        return guarded_session(
            self.guard,
            aiohttp.ClientTimeout(
                total=self.policy.total_timeout_s,
                sock_connect=self.policy.connect_timeout_s,
                sock_read=self.policy.read_timeout_s,
            ),
            auto_decompress=True,  # the size cap counts the inflated bytes (a gzip bomb stops)
            # Why 100: polls of different hosts run in parallel; one host gets one at a time
            # through the gate, so this only bounds the sockets of the whole worker.
            limit=100,
        )

    def _check(self, url: str | URL) -> URL:
        try:
            parsed = URL(url) if isinstance(url, str) else url
        except (ValueError, TypeError) as exc:
            raise InvalidFeedUrl(f"URL {url!s} cannot be parsed ({exc}); fix the feed") from None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise InvalidFeedUrl(
                f"URL {url!s} is not an absolute http(s) URL with a host; fix the feed's URL"
            )
        try:
            return self.guard.parse(parsed)
        except UnsafeAddress as exc:
            raise FetchRefused(str(exc)) from None
        except InvalidWebhookUrl as exc:
            raise InvalidFeedUrl(str(exc).replace("webhook URL", "URL")) from None

    async def fetch(
        self,
        url: str,
        validators: Validators = Validators(),  # frozen: safe to share
        *,
        accept: str = _ACCEPT,
    ) -> FetchResult:
        """GET ``url`` following up to ``max_redirects`` guarded redirects. Answers a 200 (with
        its body) or a 304; raises FetchRefused, FetchTooLarge, FetchTimeout, FeedGone (410),
        StatusError (other 4xx/5xx, with Retry-After) or FetchError (connection)."""
        if self._session is None:
            raise FetchError("PageFetcher is not open; use `async with PageFetcher(...) as f:`")
        started = time.monotonic()
        target = self._check(url)
        headers = {
            "User-Agent": self.policy.user_agent,
            "Accept": accept,
            "Accept-Encoding": "gzip, deflate",
            **validators.headers(),
        }
        for hop in range(self.policy.max_redirects + 1):
            host = target.raw_host or ""
            async with self.gate.lock(host):
                await self.gate.wait_turn(host)
                try:
                    answer = await self._get(target, headers)
                finally:
                    self.gate.done(host)
            if answer.status in _REDIRECTS:
                if not answer.location:
                    raise FetchError(
                        f"{target} redirected (HTTP {answer.status}) without a Location"
                    )
                target = self._check(target.join(URL(answer.location)))
                continue
            return self._result(answer, target, started, hop, validators)
        raise FetchError(
            f"{url} redirected more than {self.policy.max_redirects} times; set the feed's URL "
            "to its final address"
        )

    def _result(
        self, answer: _Answer, target: URL, started: float, hops: int, sent: Validators
    ) -> FetchResult:
        status, headers, body = answer.status, answer.headers, answer.body
        if status == 410:
            raise FeedGone(f"{target} answered 410 Gone: the feed is retired; remove it")
        if status == 304:
            kept = Validators(
                headers.get("ETag") or sent.etag, headers.get("Last-Modified") or sent.last_modified
            )
        elif 200 <= status < 300:
            kept = Validators(headers.get("ETag"), headers.get("Last-Modified"))
        else:
            retry_after = parse_retry_after(
                headers.get("Retry-After"), time.time(), _MAX_RETRY_AFTER_S
            )
            hint = (
                "retried later"
                if status == 429 or status >= 500
                else "check the feed's URL (retried later with backoff)"
            )
            raise StatusError(f"{target} answered HTTP {status}; {hint}", status, retry_after)
        return FetchResult(
            status=status,
            url=str(target),
            body=None if status == 304 else body,
            content_type=headers.get("Content-Type"),
            validators=kept,
            max_age_s=parse_max_age(headers.get("Cache-Control")),
            duration_s=time.monotonic() - started,
            redirects=hops,
        )

    async def _get(self, target: URL, headers: Mapping[str, str]) -> _Answer:
        assert self._session is not None
        try:
            async with self._session.get(target, headers=headers, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS or resp.status == 304 or resp.status >= 300:
                    return _Answer(resp.status, resp.headers.get("Location"), resp.headers, None)
                declared = resp.content_length
                if declared is not None and declared > self.policy.max_bytes:
                    raise FetchTooLarge(
                        f"{target} declares {declared} bytes, over STORYWATCH_FEED_MAX_BYTES="
                        f"{self.policy.max_bytes}; raise it if the feed is really that big"
                    )
                body = await self._read_capped(resp, target)
                return _Answer(resp.status, None, resp.headers, body)
        except UnsafeAddress as exc:
            raise FetchRefused(str(exc)) from None
        except UnresolvableHost as exc:
            raise FetchError(str(exc).replace("webhook URL", "feed URL")) from None
        except TimeoutError:
            raise FetchTimeout(
                f"{target} did not answer within the feed timeouts (connect "
                f"{self.policy.connect_timeout_s:g} s, read {self.policy.read_timeout_s:g} s, "
                f"total {self.policy.total_timeout_s:g} s); retried later"
            ) from None
        except aiohttp.ClientError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, UnsafeAddress):
                raise FetchRefused(str(cause)) from None
            raise FetchError(
                f"cannot fetch {target} ({type(exc).__name__}: {exc}); retried later"
            ) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse, target: URL) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > self.policy.max_bytes:
                raise FetchTooLarge(
                    f"{target} sent more than STORYWATCH_FEED_MAX_BYTES={self.policy.max_bytes} "
                    "bytes; the read was stopped (raise the setting if the feed is that big)"
                )
            chunks.append(chunk)
        return b"".join(chunks)
