"""The kept indexes of the read model: one sorted list per sort order, words and sources to
story ids (the opaque cursors that page through a sorted list: streams/cursors.py)."""

from __future__ import annotations

from collections.abc import Callable

from sortedcontainers import SortedList

from streams.cursors import Key
from streams.read_model.story import StoryEntry

__all__ = ["SORTS", "StoryIndexes"]

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
