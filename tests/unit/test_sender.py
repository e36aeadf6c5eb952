"""Webhook delivery over real HTTP to a receiver on 127.0.0.1, and the retry policy.

Traffic goes to 127.0.0.1 only: the guard allow-lists it (as STORYWATCH_WEBHOOK_ALLOW_HOSTS would)
and every other name goes through a stub lookup that answers with 127.0.0.1 or refused addresses.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config.exceptions import SettingsError
from streams.subscriptions.errors import DeliveryError
from streams.subscriptions.sender import (
    MAX_RETRY_AFTER_S,
    Attempt,
    RetryPolicy,
    WebhookSender,
    parse_retry_after,
)
from streams.subscriptions.ssrf import ALLOW_HOSTS_ENV, WebhookGuard
from streams.subscriptions.webhooks import webhook_headers

SECRET = "whsec_" + base64.b64encode(b"storywatch-test-secret-32-bytes!").decode()
OTHER = "whsec_" + base64.b64encode(b"another-secret-of-thirty-two-by!").decode()
BODY = b'{"specversion":"1.0","id":"alert-1","data":{"story":{"headline":"Flood"}}}'
LOCAL = frozenset({"127.0.0.1"})


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records every request it gets."""

    base: str = ""
    port: int = 0
    hits: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    huge_written: int = 0
    huge_done: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.hits]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def record(request: web.Request) -> bytes:
        body = await request.read()
        rec.hits.append((request.path, dict(request.headers), body))
        return body

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204)

    async def verify(request: web.Request) -> web.Response:
        body = await record(request)
        try:
            Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            return web.Response(status=401, text=f"bad signature: {exc}")
        return web.Response(status=200, text="thanks")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        code = int(request.match_info["code"])
        headers = {}
        if code == 429:
            headers["Retry-After"] = "7"
        if code == 503:
            headers["Retry-After"] = formatdate(time.time() + 120, usegmt=True)
        if code == 302:
            headers["Location"] = f"{rec.base}/target"
        return web.Response(status=code, text=f"boom {code}", headers=headers)

    async def hang(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.wait_for(rec.release.wait(), 30)
        return web.Response(status=204)

    async def drip(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse(status=202)
        await resp.prepare(request)
        await resp.write(b"accepted, ")
        await asyncio.wait_for(rec.release.wait(), 30)  # the rest of the body never comes
        return resp

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        rec.in_flight += 1
        rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
        await asyncio.sleep(0.2)
        rec.in_flight -= 1
        return web.Response(status=204)

    async def huge(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse(status=500)
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(1024):  # 64 MiB unless the client stops reading
                await resp.write(chunk)
                rec.huge_written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            rec.huge_done.set()
        return resp

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/target", ok)
    app.router.add_post("/verify", verify)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/hang", hang)
    app.router.add_post("/slow", slow)
    app.router.add_post("/drip", drip)
    app.router.add_post("/huge", huge)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = runner.addresses[0][1]
    rec.base = f"http://127.0.0.1:{rec.port}"
    yield rec
    rec.release.set()
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(WebhookGuard(LOCAL), timeout_s=5.0) as s:
        yield s


def signed(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return webhook_headers("alert-1", secret, body, time.time())


# --- outcomes --------------------------------------------------------------------------------


async def test_delivered_and_verified_by_the_receiver(
    receiver: Receiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(f"{receiver.base}/verify", BODY, signed())
    assert attempt == Attempt("delivered", 200, None, attempt.duration_s, None)
    assert attempt.duration_s > 0  # measured (its speed belongs in benchmarks, not here)
    assert receiver.paths() == ["/verify"]
    _, headers, body = receiver.hits[0]
    assert body == BODY
    assert headers["webhook-id"] == "alert-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("Storywatch")
    assert "Cookie" not in headers


async def test_another_secret_fails_verification(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(f"{receiver.base}/verify", BODY, signed(secret=OTHER))
    assert attempt.outcome == "failed"
    assert attempt.status == 401
    assert attempt.error is not None
    assert "HTTP 401" in attempt.error and "bad signature" in attempt.error


async def test_500_is_retried(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(f"{receiver.base}/status/500", BODY, signed())
    assert (attempt.outcome, attempt.status, attempt.retry_after_s) == ("retry", 500, None)
    assert attempt.error is not None and "boom 500" in attempt.error


async def test_429_retry_after_seconds(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(f"{receiver.base}/status/429", BODY, signed())
    assert (attempt.outcome, attempt.status, attempt.retry_after_s) == ("retry", 429, 7.0)


async def test_503_retry_after_http_date(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(f"{receiver.base}/status/503", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("retry", 503)
    assert attempt.retry_after_s is not None and 100 <= attempt.retry_after_s <= 121


@pytest.mark.parametrize("code", [400, 404, 410, 422])
async def test_other_4xx_fail(receiver: Receiver, sender: WebhookSender, code: int) -> None:
    attempt = await sender.send(f"{receiver.base}/status/{code}", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("failed", code)
    assert attempt.error is not None and "not retried" in attempt.error


async def test_redirect_fails_and_is_not_followed(
    receiver: Receiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(f"{receiver.base}/status/302", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("failed", 302)
    assert attempt.error is not None
    assert f"redirected to {receiver.base}/target" in attempt.error
    assert "do not follow redirects" in attempt.error
    assert receiver.paths() == ["/status/302"]


async def test_hanging_receiver_is_retried_after_the_timeout(receiver: Receiver) -> None:
    async with WebhookSender(WebhookGuard(LOCAL), timeout_s=0.5) as s:
        attempt = await s.send(f"{receiver.base}/hang", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert attempt.error is not None and "did not answer within 0.5 s" in attempt.error
    assert attempt.duration_s >= 0.5  # it waited the timeout out, not less


async def test_2xx_with_a_stalled_body_is_delivered(receiver: Receiver) -> None:
    async with WebhookSender(WebhookGuard(LOCAL), timeout_s=0.5) as s:
        attempt = await s.send(f"{receiver.base}/drip", BODY, signed())
    assert (attempt.outcome, attempt.status, attempt.error) == ("delivered", 202, None)


async def test_huge_body_is_not_read(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(f"{receiver.base}/huge", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("retry", 500)
    assert attempt.error is not None and len(attempt.error) < 500
    await asyncio.wait_for(receiver.huge_done.wait(), 10)
    assert receiver.huge_written < 32 * 2**20  # the client hung up long before 64 MiB


async def test_connection_refused_is_retried(sender: WebhookSender) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    attempt = await sender.send(f"http://127.0.0.1:{port}/x", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert attempt.error is not None and "cannot reach the receiver" in attempt.error


async def test_invalid_url_fails(sender: WebhookSender) -> None:
    attempt = await sender.send("ftp://127.0.0.1/x", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("failed", None)
    assert attempt.error is not None and "http(s)" in attempt.error


async def test_send_needs_the_context_manager() -> None:
    with pytest.raises(DeliveryError, match="async with"):
        await WebhookSender(WebhookGuard(LOCAL)).send("http://127.0.0.1/x", BODY, {})


async def test_environment_proxy_is_not_used(
    receiver: Receiver, sender: WebhookSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # would refuse every connection
    attempt = await sender.send(f"{receiver.base}/ok", BODY, signed())
    assert attempt.outcome == "delivered"


async def test_concurrency_per_host_is_bounded(receiver: Receiver) -> None:
    async with WebhookSender(WebhookGuard(LOCAL), limit_per_host=2) as s:
        attempts = await asyncio.gather(
            *(s.send(f"{receiver.base}/slow", BODY, signed()) for _ in range(6))
        )
    assert [a.outcome for a in attempts] == ["delivered"] * 6
    assert receiver.max_in_flight == 2


# --- the guard at send time ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "127.1", "2130706433", "0x7f.1"],
)
async def test_loopback_is_refused_unless_allow_listed(receiver: Receiver, host: str) -> None:
    async with WebhookSender(WebhookGuard()) as s:
        attempt = await s.send(f"http://{host}:{receiver.port}/ok", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("failed", None)
    assert attempt.error is not None
    if host in ("127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"):
        assert attempt.error.startswith("refused: ")
        assert ALLOW_HOSTS_ENV in attempt.error
    assert receiver.hits == []


async def test_allow_listed_name_is_delivered(receiver: Receiver) -> None:
    async with WebhookSender(WebhookGuard(frozenset({"localhost"}))) as s:
        attempt = await s.send(f"http://localhost:{receiver.port}/ok", BODY, signed())
    assert attempt.outcome == "delivered"
    assert receiver.hits[0][1]["Host"] == f"localhost:{receiver.port}"


class StubDNS:
    """A lookup answering from a dict that a test may change between calls."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int, family: int) -> list[tuple[int, str]]:
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, a) for a in self.answers[host]]


async def test_connects_to_the_checked_address_with_the_original_host(
    receiver: Receiver,
) -> None:
    dns = StubDNS({"hooks.example.com": ["127.0.0.1"]})
    async with WebhookSender(WebhookGuard(LOCAL, lookup=dns)) as s:
        attempt = await s.send(f"http://hooks.example.com:{receiver.port}/ok", BODY, signed())
    assert attempt.outcome == "delivered"
    assert receiver.hits[0][1]["Host"] == f"hooks.example.com:{receiver.port}"


async def test_checked_at_creation_and_again_at_send(receiver: Receiver) -> None:
    dns = StubDNS({"hooks.example.com": ["127.0.0.1"]})
    guard = WebhookGuard(LOCAL, lookup=dns)
    url = f"http://hooks.example.com:{receiver.port}/ok"
    assert await guard.check_url(url) == ["127.0.0.1"]
    dns.answers["hooks.example.com"] = ["127.0.0.1", "10.0.0.1"]  # rebinding after the check
    async with WebhookSender(guard) as s:
        attempt = await s.send(url, BODY, signed())
    assert (attempt.outcome, attempt.status) == ("failed", None)
    assert attempt.error is not None
    assert "hooks.example.com resolves to a private address" in attempt.error
    assert receiver.hits == []


async def test_unresolvable_host_is_retried() -> None:
    async with WebhookSender(WebhookGuard(lookup=StubDNS({}))) as s:
        attempt = await s.send("https://gone.example.com/x", BODY, signed())
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert attempt.error is not None and "does not resolve" in attempt.error


# --- Retry-After and the retry policy --------------------------------------------------------


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 120 ", now) == 120.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now) == 90.0
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0.0
    assert parse_retry_after("9" * 400, now) == MAX_RETRY_AFTER_S
    assert parse_retry_after("7", now, cap_s=5) == 5.0
    for bad in (None, "", "soon", "-1", "1.5", "²"):
        assert parse_retry_after(bad, now) is None


def test_policy_delay_is_full_jitter_within_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=1.0, max_s=60.0)
    rng = random.Random(7)
    for n in range(1, 12):
        cap = min(60.0, 2.0 ** (n - 1))
        delays = [policy.delay(n, None, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # spread over the whole range, not pinned low
    assert policy.delay(10_000, None, rng) <= 60.0  # no overflow


def test_policy_honours_retry_after_up_to_max() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=1.0, max_s=60.0)
    rng = random.Random(1)
    assert all(policy.delay(1, 7.0, rng) >= 7.0 for _ in range(50))
    assert all(policy.delay(1, 7.0, rng) <= 7.0 for _ in range(50))  # jitter < 1 here
    assert policy.delay(1, 3600.0, rng) == 60.0


def test_policy_exhausted_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, base_s=1.0, max_s=60.0)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    ("attempts", "base", "top"),
    [(0, 1.0, 60.0), (3, 0.0, 60.0), (3, 10.0, 1.0), (3, 1.0, math.inf)],
)
def test_policy_refuses_bad_settings(attempts: int, base: float, top: float) -> None:
    with pytest.raises(SettingsError):
        RetryPolicy(max_attempts=attempts, base_s=base, max_s=top)


@given(
    n=st.integers(min_value=-3, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=10_000.0),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=1e9),
    seed=st.integers(0, 2**32),
)
def test_policy_delay_bounds(
    n: int, base: float, extra: float, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=5, base_s=base, max_s=base + extra)
    delay = policy.delay(n, retry_after, random.Random(seed))
    assert 0.0 <= delay <= policy.max_s
    if retry_after is not None:
        assert delay >= min(retry_after, policy.max_s)
