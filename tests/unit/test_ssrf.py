"""The webhook SSRF guard: address classes, IPv4 hidden in IPv6, URLs, DNS answers.

No traffic leaves this machine: public addresses are only classified, and host names other than
``localhost`` go through a stub lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.exceptions import SettingsError
from streams.subscriptions.errors import (
    DeliveryError,
    InvalidWebhookUrl,
    UnresolvableHost,
    UnsafeAddress,
)
from streams.subscriptions.ssrf import (
    ALLOW_HOSTS_ENV,
    WebhookGuard,
    address_class,
    check_address,
)

REFUSED = [
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1"),
    ("2002:a00:1::1", "6to4 form of 10.0.0.1"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::ffff:0:a00:1", "IPv4-translated"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("198.18.0.1", "benchmarking"),
    ("2001::1", "reserved"),  # Teredo
    ("fe80::1%eth0", "link-local"),
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2a00:1450:4001::1"]


@pytest.mark.parametrize(("ip", "kind"), REFUSED)
def test_refused_address_classes(ip: str, kind: str) -> None:
    name = address_class(ip)
    assert name is not None
    assert kind in name
    with pytest.raises(UnsafeAddress) as info:
        check_address(ip)
    message = str(info.value)
    assert message.startswith(f"refused: {ip} is ")
    assert ALLOW_HOSTS_ENV in message


def test_message_names_the_class_and_what_to_do() -> None:
    with pytest.raises(UnsafeAddress) as info:
        check_address("10.0.0.5")
    assert str(info.value) == (
        "refused: 10.0.0.5 is a private address; webhooks must reach a public host, "
        "or list it in STORYWATCH_WEBHOOK_ALLOW_HOSTS"
    )
    assert isinstance(info.value, DeliveryError)


@pytest.mark.parametrize("ip", [*PUBLIC, "::ffff:93.184.216.34", "64:ff9b::5db8:d822"])
def test_public_addresses_pass(ip: str) -> None:
    assert address_class(ip) is None
    check_address(ip)  # does not raise
    check_address(ipaddress.ip_address(ip))


def test_not_an_address_is_refused() -> None:
    with pytest.raises(UnsafeAddress, match="not an IP address"):
        check_address("example.com")


_IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)


@given(_IPV4)
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4(v4: ipaddress.IPv4Address) -> None:
    low = int(v4)
    forms = [
        ipaddress.IPv6Address(0xFFFF << 32 | low),  # ::ffff:a.b.c.d
        ipaddress.IPv6Address(0xFFFF << 48 | low),  # ::ffff:0:a.b.c.d
        ipaddress.IPv6Address(0x64FF9B << 96 | low),  # 64:ff9b::a.b.c.d
        ipaddress.IPv6Address(0x2002 << 112 | low << 80 | 1),  # 2002:aabb:ccdd::1
        ipaddress.IPv6Address(low),  # ::a.b.c.d
    ]
    refused = address_class(v4) is not None
    for form in forms:
        assert (address_class(form) is not None) == refused, form


_EMBEDDING = [
    ipaddress.IPv6Network(n)
    for n in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "2002::/16", "::/96")
]


@given(st.one_of(_IPV4, st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)))
def test_never_more_permissive_than_is_global(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    # An address the guard passes is globally reachable by Python's own table, except IPv6
    # forms that carry a public IPv4 (judged by that IPv4; Python calls them non-global).
    if address_class(ip) is not None:
        return
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _EMBEDDING):
        return
    assert ip.is_global


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/hook",
        "http:///hook",
        "mailto:a@example.com",
        "",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f.0.0.1/hook",
        "http://1.1/hook",
    ],
)
def test_parse_refuses_urls_without_http_and_a_host(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        WebhookGuard().parse(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::5]/hook",
    ],
)
def test_parse_refuses_address_literals(url: str) -> None:
    with pytest.raises(UnsafeAddress, match="refused"):
        WebhookGuard().parse(url)


@pytest.mark.parametrize(
    ("allow", "url"),
    [
        ({"127.0.0.1"}, "http://127.0.0.1:8080/hook"),
        ({"[::1]"}, "http://[::1]:8080/hook"),
        ({"::1"}, "http://[0:0::1]/hook"),
        ({"Hooks.Internal."}, "http://hooks.internal/hook"),
    ],
)
def test_allow_list_permits_hosts(allow: set[str], url: str) -> None:
    assert WebhookGuard(frozenset(allow)).parse(url).raw_host


async def test_localhost_name_is_refused_when_not_allow_listed() -> None:
    with pytest.raises(UnsafeAddress) as info:
        await WebhookGuard().check_url("http://localhost:9/hook")
    message = str(info.value)
    assert message.startswith("refused: localhost resolves to ")
    assert "loopback" in message
    assert f"list localhost in {ALLOW_HOSTS_ENV}" in message


async def test_allow_listed_name_resolves_unchecked() -> None:
    addresses = await WebhookGuard(frozenset({"localhost"})).resolve_checked("http://localhost/")
    assert "127.0.0.1" in addresses or "::1" in addresses


class StubDNS:
    """A lookup answering from a dict, so names never reach a real resolver."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int, family: int) -> list[tuple[int, str]]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in self.answers[host]]


async def test_public_name_passes_with_all_its_addresses() -> None:
    dns = StubDNS({"hooks.example.com": ["93.184.216.34", "2606:4700::1111", "93.184.216.34"]})
    guard = WebhookGuard(lookup=dns)
    assert await guard.check_url("https://hooks.example.com/x") == [
        "93.184.216.34",
        "2606:4700::1111",
    ]
    assert dns.calls == ["hooks.example.com"]


async def test_one_private_answer_among_public_ones_is_refused() -> None:
    dns = StubDNS({"rebind.example.com": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(UnsafeAddress, match=r"rebind\.example\.com resolves to a private") as info:
        await WebhookGuard(lookup=dns).check_url("https://rebind.example.com/x")
    assert "10.0.0.1" not in str(info.value)  # the private network is not mapped for the caller


async def test_name_resolving_to_metadata_service_is_refused() -> None:
    dns = StubDNS({"metadata.example.com": ["169.254.169.254"]})
    with pytest.raises(UnsafeAddress, match="link-local"):
        await WebhookGuard(lookup=dns).resolve_checked("http://metadata.example.com/")


async def test_allow_listed_address_permits_names_resolving_to_it() -> None:
    dns = StubDNS({"hooks.internal": ["10.0.0.7"]})
    guard = WebhookGuard(frozenset({"10.0.0.7"}), lookup=dns)
    assert await guard.check_url("http://hooks.internal/x") == ["10.0.0.7"]


async def test_allow_listed_name_permits_any_address() -> None:
    dns = StubDNS({"hooks.internal": ["10.0.0.7", "fd00::7"]})
    guard = WebhookGuard(frozenset({"hooks.internal"}), lookup=dns)
    assert await guard.check_url("http://hooks.internal/x") == ["10.0.0.7", "fd00::7"]


async def test_literal_needs_no_lookup() -> None:
    dns = StubDNS({})
    assert await WebhookGuard(lookup=dns).check_url("http://93.184.216.34/x") == ["93.184.216.34"]
    assert dns.calls == []


async def test_unresolvable_host_is_a_clear_error() -> None:
    with pytest.raises(UnresolvableHost, match=r"nowhere\.invalid does not resolve"):
        await WebhookGuard(lookup=StubDNS({})).check_url("https://nowhere.invalid/x")


async def test_empty_answer_is_unresolvable() -> None:
    with pytest.raises(UnresolvableHost, match="no address"):
        await WebhookGuard(lookup=StubDNS({"empty.example": []})).check_url("http://empty.example/")


async def test_slow_resolver_times_out() -> None:
    async def hang(host: str, port: int, family: int) -> list[tuple[int, str]]:
        await asyncio.sleep(10)
        return []

    guard = WebhookGuard(lookup=hang, dns_timeout_s=0.05)
    with pytest.raises(UnresolvableHost, match=r"did not resolve within 0\.05 s"):
        await guard.check_url("http://slow.example/")


@pytest.mark.parametrize(
    ("entry", "url", "allowed"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080/hook", True),
        ("127.0.0.1:8080", "http://127.0.0.1:8081/hook", False),
        ("127.0.0.1:8080", "http://127.0.0.1/hook", False),  # port 80
        ("[::1]:8443", "https://[::1]:8443/hook", True),
        ("::1]:8443", "https://[::1]:8443/hook", True),  # as the settings hand it over
        ("[::1]:8443", "https://[::1]:9443/hook", False),
        ("127.0.0.1", "http://127.0.0.1:9999/hook", True),  # no port: any port
    ],
)
def test_allow_list_entry_with_port_permits_that_port_only(
    entry: str, url: str, allowed: bool
) -> None:
    guard = WebhookGuard(frozenset({entry}))
    if allowed:
        assert guard.parse(url).raw_host
    else:
        with pytest.raises(UnsafeAddress):
            guard.parse(url)


async def test_allow_listed_name_with_port_resolves_on_that_port_only() -> None:
    dns = StubDNS({"hooks.internal": ["10.0.0.7"]})
    guard = WebhookGuard(frozenset({"hooks.internal:8443"}), lookup=dns)
    assert await guard.check_url("https://hooks.internal:8443/x") == ["10.0.0.7"]
    with pytest.raises(UnsafeAddress, match=r"hooks\.internal resolves to a private address"):
        await guard.check_url("https://hooks.internal/x")


@pytest.mark.parametrize("entry", ["host:", "host:http", "host:0", "host:70000", ":8080"])
def test_allow_list_entry_with_a_bad_port_is_a_settings_error(entry: str) -> None:
    with pytest.raises(SettingsError, match=ALLOW_HOSTS_ENV):
        WebhookGuard(frozenset({entry}))
