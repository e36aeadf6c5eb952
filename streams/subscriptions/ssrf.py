"""The SSRF guard of webhooks: which URLs and addresses a webhook may reach.

A webhook URL is given by a user, so without a guard Storywatch would POST wherever it says:
the cloud metadata service, the Kafka broker's admin port, a router. The guard refuses every
address that is not a public unicast address (with IPv4 embedded in IPv6 unwrapped first), unless
the operator lists the host in ``STORYWATCH_WEBHOOK_ALLOW_HOSTS``. It checks at subscription
time (``check_url``) and again at every connection (the sender's resolver answers only with the
addresses this guard checked, so a DNS answer that changes in between cannot slip through).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable

from yarl import URL

from config.exceptions import SettingsError
from streams.subscriptions.errors import InvalidWebhookUrl, UnresolvableHost, UnsafeAddress

__all__ = [
    "ALLOW_HOSTS_ENV",
    "Address",
    "Lookup",
    "WebhookGuard",
    "address_class",
    "allow_entry",
    "check_address",
    "system_lookup",
]

ALLOW_HOSTS_ENV = "STORYWATCH_WEBHOOK_ALLOW_HOSTS"
# Why 5 s: a resolver that has not answered by then is broken for practical purposes, and the
# API request that creates a subscription waits on this lookup.
_DNS_TIMEOUT_S = 5.0
_SCHEMES = ("http", "https")
# Legacy numeric IPv4 forms (127.1, 2130706433, 0x7f.0.0.1): getaddrinfo maps them onto an
# address but aiohttp refuses them, so they are refused here too, up front.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port, family) -> [(family, address)]; the system resolver unless a test passes its own.
Lookup = Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_PRIVATE = "a private address"
_DOCS = "a documentation address"

# First match wins, so narrower ranges come before the ranges that contain them.
_V4_CLASSES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("10.0.0.0/8"), _PRIVATE),
    (_V4("172.16.0.0/12"), _PRIVATE),
    (_V4("192.168.0.0/16"), _PRIVATE),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_V4("192.0.0.0/24"), "a reserved (IETF protocol assignments) address"),
    (_V4("192.0.2.0/24"), _DOCS),
    (_V4("198.51.100.0/24"), _DOCS),
    (_V4("203.0.113.0/24"), _DOCS),
    (_V4("198.18.0.0/15"), "a reserved (benchmarking) address"),
    (_V4("192.88.99.0/24"), "a reserved (6to4 relay anycast) address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("255.255.255.255/32"), "a broadcast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)

# Checked before IPv4 is unwrapped: :: and ::1 lie inside the IPv4-compatible range ::/96.
_V6_FIRST: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "an unspecified address"),
    (_V6("::1/128"), "a loopback address"),
)
_V6_CLASSES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("fc00::/7"), "a private (unique local) address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V6("2001:db8::/32"), _DOCS),
    (_V6("3fff::/20"), _DOCS),
    (_V6("64:ff9b:1::/48"), "a private (local-use NAT64) address"),
    (_V6("100::/64"), "a reserved (discard-only) address"),
    # Includes Teredo (2001::/32), whose embedded IPv4 is obfuscated: refused as a whole.
    (_V6("2001::/23"), "a reserved (IETF protocol assignments) address"),
    (_V6("::/8"), "a reserved address"),
)

# IPv6 forms that carry an IPv4 address: the connection ends up at that IPv4 address.
_SIIT = _V6("::ffff:0:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_COMPATIBLE = _V6("::/96")


def _parse(ip: str | Address) -> Address:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip
    try:
        return ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise UnsafeAddress(
            f"refused: {ip!r} is not an IP address; give a literal IPv4 or IPv6 address"
        ) from None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _SIIT:
        return low32, "IPv4-translated"
    if ip in _NAT64:
        return low32, "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _COMPATIBLE:
        return low32, "IPv4-compatible"
    return None


def _v4_class(ip: ipaddress.IPv4Address) -> str | None:
    for net, name in _V4_CLASSES:
        if ip in net:
            return name
    if not ip.is_global:
        return "a non-public (special-purpose) address"
    return None


def _v6_class(ip: ipaddress.IPv6Address) -> str | None:
    for net, name in _V6_CLASSES:
        if ip in net:
            return name
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public (special-purpose) address"
    return None


def address_class(ip: str | Address) -> str | None:
    """The refused class of ``ip`` as a phrase ("a private address"), or None when public."""
    addr = _parse(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return _v4_class(addr)
    for net, name in _V6_FIRST:
        if addr in net:
            return name
    embedded = _embedded_ipv4(addr)
    if embedded is None:
        return _v6_class(addr)
    v4, form = embedded
    v4_name = _v4_class(v4)
    return None if v4_name is None else f"{v4_name} (the {form} form of {v4})"


def check_address(
    ip: str | Address,
    *,
    host: str | None = None,
    purpose: str = "webhooks",
    allow_env: str = ALLOW_HOSTS_ENV,
) -> None:
    """Raise UnsafeAddress unless ``ip`` is a public address; ``host`` names it in the message,
    ``purpose`` and ``allow_env`` say who is refused and which setting lifts it (feeds reuse
    this guard with STORYWATCH_FEED_ALLOW_HOSTS)."""
    name = address_class(ip)
    if name is None:
        return
    if host is None:
        raise UnsafeAddress(
            f"refused: {ip} is {name}; {purpose} must reach a public host, "
            f"or list it in {allow_env}"
        )
    # The address itself is not named: the error goes back to whoever asked, and naming what
    # an internal name resolves to would map the private network for them.
    raise UnsafeAddress(
        f"refused: {host} resolves to {name}; {purpose} must reach a public host, "
        f"or list {host} in {allow_env}"
    )


def allow_entry(entry: str) -> tuple[str, int | None]:
    """One ``STORYWATCH_WEBHOOK_ALLOW_HOSTS`` entry as (host, port or None for any port):
    ``host``, ``host:port``, ``1.2.3.4:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address.
    (``::1]:8080`` is also read: the settings strip the brackets of an entry.)"""
    text = entry.strip()
    host, port = text, None
    if "]:" in text:
        host, port = text.split("]:", 1)
    elif text.count(":") == 1:
        host, port = text.split(":", 1)
    host = host.strip("[]")
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise SettingsError(
            f"{ALLOW_HOSTS_ENV} entry {entry!r} has no valid port after the colon; write "
            "host, host:port (1-65535) or [ipv6]:port"
        )
    if not host:
        raise SettingsError(f"{ALLOW_HOSTS_ENV} entry {entry!r} has no host; write host[:port]")
    return _normalize_host(host), int(port) if port else None


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    literal = _literal(host)
    return host if literal is None else str(literal)


async def system_lookup(host: str, port: int, family: int) -> list[tuple[int, str]]:
    """Resolve ``host`` with the event loop's getaddrinfo: [(family, address)]."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    found: list[tuple[int, str]] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        if fam == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            found.append((fam, f"{sockaddr[0]}%{sockaddr[3]}"))  # keep a link-local scope
        elif fam in (socket.AF_INET, socket.AF_INET6):
            found.append((fam, str(sockaddr[0])))
    return found


class WebhookGuard:
    """Decides which webhook URLs and addresses may be reached: public ones and ``allow_hosts``.

    A host (name or literal address) in ``allow_hosts`` is permitted whatever it resolves to;
    an address in ``allow_hosts`` is also permitted when a name resolves to it. An entry with
    a port (``host:port``) permits that host on that port only.
    """

    def __init__(
        self,
        allow_hosts: Iterable[str] = frozenset(),
        *,
        lookup: Lookup | None = None,
        dns_timeout_s: float = _DNS_TIMEOUT_S,
        purpose: str = "webhooks",
        allow_env: str = ALLOW_HOSTS_ENV,
    ) -> None:
        entries = [allow_entry(h) for h in allow_hosts if h.strip()]
        self.allow_hosts = frozenset(host for host, port in entries if port is None)
        self.allow_host_ports = frozenset((host, port) for host, port in entries if port)
        self._lookup: Lookup = lookup or system_lookup
        self._dns_timeout_s = dns_timeout_s
        self._words = {"purpose": purpose, "allow_env": allow_env}

    def allows(self, host: str, port: int | None = None) -> bool:
        """Whether ``host`` (a name or a literal address) is in the allow list, on any port or
        (an entry with a port) on ``port``."""
        name = _normalize_host(host)
        return name in self.allow_hosts or (name, port) in self.allow_host_ports

    def parse(self, url: str | URL) -> URL:
        """``url`` parsed the way aiohttp parses it and checked without DNS: an absolute http(s)
        URL with a host, and a permitted address when the host is a literal address."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as exc:
            raise InvalidWebhookUrl(
                f"webhook URL {url!r} cannot be parsed ({exc}); give an absolute https:// URL"
            ) from None
        if parsed.scheme not in _SCHEMES or not parsed.raw_host:
            raise InvalidWebhookUrl(
                f"webhook URL {str(url)!r} is not an absolute http(s) URL with a host; "
                "give one such as https://hooks.example.com/storywatch"
            )
        host = parsed.raw_host
        literal = _literal(host)
        if literal is None and _NUMERIC_HOST.fullmatch(host):
            raise InvalidWebhookUrl(
                f"webhook URL host {host!r} is a legacy numeric IPv4 form; write the address "
                "as four decimal numbers (a.b.c.d) or use a host name"
            )
        if literal is not None and not self.allows(host, parsed.port):
            check_address(literal, **self._words)
        return parsed

    async def resolve_host(
        self, host: str, port: int = 0, family: int = socket.AF_UNSPEC
    ) -> list[tuple[int, str]]:
        """Resolve ``host`` and check every answer: [(family, address)], the addresses to
        connect to. Refuses when ANY answer is refused (a rebinding name may mix answers)."""
        literal = _literal(host)
        if literal is not None:
            if not self.allows(host, port):
                check_address(literal, **self._words)
            fam = socket.AF_INET if literal.version == 4 else socket.AF_INET6
            return [(fam, str(literal))]
        try:
            async with asyncio.timeout(self._dns_timeout_s):
                answers = await self._lookup(host, port, family)
        except TimeoutError:
            raise UnresolvableHost(
                f"{host} did not resolve within {self._dns_timeout_s:g} s; check the webhook "
                "URL's host name and this machine's DNS"
            ) from None
        except OSError as exc:
            raise UnresolvableHost(
                f"{host} does not resolve ({exc.strerror or exc}); check the webhook URL's "
                "host name"
            ) from None
        if not answers:
            raise UnresolvableHost(
                f"{host} resolves to no address; check the webhook URL's host name"
            )
        if not self.allows(host, port):
            for _fam, addr in answers:
                if not self.allows(addr, port):
                    check_address(addr, host=host, **self._words)
        return list(dict.fromkeys(answers))

    async def resolve_checked(self, url: str | URL) -> list[str]:
        """The addresses ``url``'s host resolves to (both families), all of them permitted;
        raises UnsafeAddress, UnresolvableHost or InvalidWebhookUrl otherwise."""
        parsed = self.parse(url)
        assert parsed.raw_host is not None  # parse() refuses a URL without a host
        answers = await self.resolve_host(parsed.raw_host, parsed.port or 0)
        return list(dict.fromkeys(addr for _fam, addr in answers))

    async def check_url(self, url: str | URL) -> list[str]:
        """Check a webhook URL when a subscription is created; see ``resolve_checked``."""
        return await self.resolve_checked(url)
