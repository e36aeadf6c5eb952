"""The opaque page cursors of every list API (``next_cursor`` in, ``?cursor=`` back): a
kind (which list, or which sort of it) and the key the next page starts after, as URL-safe
base64 of JSON. One format for stories, articles, subscriptions and alerts."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from config.exceptions import StorywatchError

__all__ = ["NOT_HANDED_OUT", "BadCursor", "Key", "decode_cursor", "encode_cursor"]

Key = tuple[Any, ...]

NOT_HANDED_OUT = "cursor is not one this API handed out: use next_cursor as is"


class BadCursor(StorywatchError):
    """A cursor that this API did not hand out (or for another list or sort)."""


def encode_cursor(kind: str, key: Iterable[Any]) -> str:
    """The cursor for the page after ``key`` in the list (or sort) named ``kind``."""
    raw = json.dumps([kind, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, like: Key) -> Key:
    """The key inside ``cursor``; :class:`BadCursor` unless it was made for ``kind`` and has
    the shape of ``like`` (numbers where ``like`` has numbers, strings where strings)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found_kind, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise BadCursor(NOT_HANDED_OUT) from None
    if found_kind != kind:
        raise BadCursor(f"cursor is for {found_kind!r}, not {kind!r}: keep the same route and sort")
    if not isinstance(key, list) or len(key) != len(like):
        raise BadCursor(NOT_HANDED_OUT)
    for got, want in zip(key, like, strict=True):
        number = isinstance(got, int | float) and not isinstance(got, bool)
        if (isinstance(want, str) and not isinstance(got, str)) or (
            not isinstance(want, str) and not number
        ):
            raise BadCursor(NOT_HANDED_OUT)
    return tuple(key)
