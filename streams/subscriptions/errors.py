"""Errors of webhook delivery: each message says what to do next."""

from __future__ import annotations

from config.exceptions import StorywatchError

__all__ = [
    "DeliveryError",
    "InvalidSecret",
    "InvalidWebhookUrl",
    "SecretUnreadable",
    "UnknownFormat",
    "UnresolvableHost",
    "UnsafeAddress",
]


class DeliveryError(StorywatchError):
    """A webhook cannot be accepted, rendered, signed or delivered."""


class UnsafeAddress(DeliveryError):
    """A webhook URL leads to an address webhooks must not reach (SSRF guard)."""


class UnresolvableHost(DeliveryError):
    """A webhook URL's host name does not resolve."""


class InvalidWebhookUrl(DeliveryError, ValueError):
    """A webhook URL is not an absolute http(s) URL with a host."""


class InvalidSecret(DeliveryError, ValueError):
    """A webhook secret is not a Standard Webhooks secret (``whsec_`` + base64)."""


class UnknownFormat(DeliveryError, ValueError):
    """A webhook body format other than those in ``FORMATS``."""


class SecretUnreadable(DeliveryError):
    """A webhook secret on the subscriptions topic does not decrypt with this worker's key."""
