"""The kept indexes of the read model: one sorted list per sort order, words and sources to
story ids; and the opaque cursors that page through a sorted list."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any

from sortedcontainers import SortedList

from config.exceptions import StorywatchError
from streams.read_model.story import StoryEntry

__all__ = ["SORTS", "BadCursor", "StoryIndexes", "decode_cursor", "encode_cursor"]

Key = tuple[Any, ...]

#: Sort orders: each key is ascending with the story id last, so keys are unique and a
#: cursor (the last key served) pages on exactly where the previous page ended.
SORTS: dict[str, Callable[[StoryEntry], Key]] = {
    # recent growth: articles in the last hour, then the last day (event time)
    "growth": lambda s: (-s.last_hour, -s.last_day, -s.size, -s.last_seen, s.story_id),
    "size": lambda s: (-s.size, -s.last_seen, s.story_id),
    "recent": lambda s: (-s.last_seen, s.story_id),
    "new": lambda s: (-s.first_seen, s.story_id),
    "sources": lambda s: (-s.source_count, -s.size, s.story_id),
}


class BadCursor(StorywatchError):
    """A cursor that this API did not hand out (or for another sort)."""


def encode_cursor(kind: str, key: Iterable[Any]) -> str:
    raw = json.dumps([kind, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, like: Key) -> Key:
    """The key inside ``cursor``; :class:`BadCursor` unless it was made for ``kind`` and has
    the shape of ``like`` (numbers where ``like`` has numbers, strings where strings)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found_kind, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise BadCursor("cursor is not one this API handed out: use next_cursor as is") from None
    if found_kind != kind:
        raise BadCursor(f"cursor is for {found_kind!r}, not {kind!r}: keep the same sort")
    if not isinstance(key, list) or len(key) != len(like):
        raise BadCursor("cursor is not one this API handed out: use next_cursor as is")
    for got, want in zip(key, like, strict=True):
        number = isinstance(got, int | float) and not isinstance(got, bool)
        if (isinstance(want, str) and not isinstance(got, str)) or (
            not isinstance(want, str) and not number
        ):
            raise BadCursor("cursor is not one this API handed out: use next_cursor as is")
    return tuple(key)


class StoryIndexes:
    """Sorted lists by each sort key, and word/source -> story ids (for search filters)."""

    def __init__(self) -> None:
        self.sorted: dict[str, SortedList] = {name: SortedList() for name in SORTS}
        self.by_word: dict[str, set[str]] = {}
        self.by_source: dict[str, set[str]] = {}

    def place(self, entry: StoryEntry) -> None:
        """(Re)place ``entry`` in every sorted list whose key changed."""
        for name, key_of in SORTS.items():
            key = key_of(entry)
            old = entry.keys.get(name)
            if old == key:
                continue
            ordered = self.sorted[name]
            if old is not None:
                ordered.remove(old)
            ordered.add(key)
            entry.keys[name] = key

    def set_words(self, entry: StoryEntry, words: frozenset[str]) -> None:
        if words == entry.words:
            return
        for word in entry.words - words:
            self._drop(self.by_word, word, entry.story_id)
        for word in words - entry.words:
            self.by_word.setdefault(word, set()).add(entry.story_id)
        entry.words = words

    def add_source(self, entry: StoryEntry, source: str) -> None:
        self.by_source.setdefault(source.lower(), set()).add(entry.story_id)

    def remove(self, entry: StoryEntry) -> None:
        for name, key in entry.keys.items():
            self.sorted[name].remove(key)
        entry.keys.clear()
        for word in entry.words:
            self._drop(self.by_word, word, entry.story_id)
        for source in entry.sources:
            self._drop(self.by_source, source.lower(), entry.story_id)

    @staticmethod
    def _drop(index: dict[str, set[str]], term: str, story_id: str) -> None:
        holders = index.get(term)
        if holders is not None:
            holders.discard(story_id)
            if not holders:
                del index[term]
