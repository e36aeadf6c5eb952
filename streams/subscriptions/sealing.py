"""Webhook secrets encrypted at rest on the compacted ``subscriptions`` topic.

A subscription's signing secret (and, during a rotation's grace period, the previous one)
is written to the topic as ``secret_sealed`` / ``previous_secret_sealed``: AES-256-GCM under
the deployment key's ``webhook-secrets`` purpose key (streams/secret_key.py), with the
subscription id as associated data, so a sealed secret copied onto another subscription's
record does not open. Anyone who can read the topic sees ciphertext only.

In memory (the store a worker serves from) a record holds the plain ``secret``. A record
written before encryption (a plain ``secret`` on the topic) still loads as it is, and is
sealed the next time it is written (an edit, a rotation).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.groups import KeySettings
from streams.secret_key import derive_key, master_key
from streams.subscriptions.errors import SecretUnreadable

__all__ = ["SEALED_FIELDS", "SecretBox"]

#: (plain field in memory, sealed field on the topic)
SEALED_FIELDS = (("secret", "secret_sealed"), ("previous_secret", "previous_secret_sealed"))
_PURPOSE = "webhook-secrets"
_VERSION = "v1."
# Why 12 bytes: AES-GCM's standard nonce size; random per seal (2^-32 collision risk only
# after ~2^32 seals under one key, far beyond the writes of subscriptions).
_NONCE_BYTES = 12

Record = dict[str, Any]


class SecretBox:
    """Seals and opens webhook secrets; the key is read on first use (never at import)."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key_source = key
        self._aead: AESGCM | None = None

    def __repr__(self) -> str:
        return "SecretBox(hidden)"

    @classmethod
    def from_settings(cls, keys: KeySettings) -> SecretBox:
        """The box of this deployment's key (STORYWATCH_SECRET_KEY / _FILE / local file)."""
        return cls(lambda: derive_key(master_key(keys), _PURPOSE))

    @property
    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(self._key_source())
        return self._aead

    def seal(self, secret: str, subscription_id: str) -> str:
        """``secret`` encrypted for ``subscription_id``'s record: ``v1.<base64url>``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, secret.encode(), subscription_id.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, subscription_id: str) -> str:
        """The secret :meth:`seal` sealed for ``subscription_id``; :class:`SecretUnreadable`
        when it was sealed under another key, for another subscription, or is damaged."""
        try:
            if not sealed.startswith(_VERSION):
                raise ValueError(sealed[:3])
            raw = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._cipher.decrypt(nonce, body, subscription_id.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SecretUnreadable(
                f"the webhook secret of subscription {subscription_id} does not decrypt "
                f"({type(exc).__name__}): every worker and command must share one "
                "STORYWATCH_SECRET_KEY (or _FILE); if the key is lost, rotate the secret with "
                "POST /api/subscriptions/{id}/rotate-secret"
            ) from None

    def seal_record(self, record: Record) -> Record:
        """The topic form of an in-memory record: plain secrets replaced by sealed ones."""
        out = dict(record)
        subscription_id = str(record.get("id", ""))
        for plain, sealed in SEALED_FIELDS:
            value = out.pop(plain, None)
            if value:
                out[sealed] = self.seal(str(value), subscription_id)
        return out

    def open_record(self, record: Record) -> Record:
        """The in-memory form of a topic record: sealed secrets opened. A record written
        before encryption (a plain ``secret``) is returned as it is (sealed on its next
        write). Raises :class:`SecretUnreadable` when a sealed secret does not open."""
        out = dict(record)
        subscription_id = str(record.get("id", ""))
        for plain, sealed in SEALED_FIELDS:
            value = out.pop(sealed, None)
            if isinstance(value, str) and value:
                out[plain] = self.open(value, subscription_id)
        return out
