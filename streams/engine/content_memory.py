"""What the engine remembers of each article in the window: its seen record (by id, to drop
exact re-sends) and where its normalized text went (to send a copy under a new id to the
same story as a ``duplicate``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from streams.engine.story_state import Record, StateChanges

__all__ = ["ContentMemory"]


def _where(seen: Record) -> Record:
    """The part of a seen record a later copy of the same text needs."""
    return {"story_id": seen["story_id"], "group_id": seen["group_id"], "ts": seen["ts"]}


class ContentMemory:
    """Seen records ("id:<id>" -> record, oldest first) and content key -> where it went.

    The content map is derived from the seen records (their "content" field), so it costs
    no table write of its own.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, Record] = OrderedDict()
        self._content: OrderedDict[str, Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def key(article_id: str) -> str:
        return f"id:{article_id}"

    def seen(self, key: str) -> bool:
        return key in self._seen

    def record(self, key: str) -> Record | None:
        return self._seen.get(key)

    def where_content(self, content_key: str) -> Record | None:
        """Story id, group id and time of the earlier article with this text, if any."""
        return self._content.get(content_key)

    def remember(
        self,
        key: str,
        story_id: str,
        group_id: str,
        ts: float,
        changes: StateChanges,
        **extra: Any,
    ) -> None:
        rec = {"story_id": story_id, "group_id": group_id, "ts": ts, **extra}
        self._seen[key] = rec
        changes.seen[key] = rec
        if "content" in rec:
            self._content[rec["content"]] = _where(rec)

    def expire(self, cutoff: float, changes: StateChanges) -> list[Record]:
        """Forget the articles seen before ``cutoff``; returns their seen records."""
        gone: list[Record] = []
        while self._seen:
            key, rec = next(iter(self._seen.items()))
            if rec["ts"] >= cutoff:
                break
            del self._seen[key]
            changes.seen[key] = None
            gone.append(rec)
        while self._content and next(iter(self._content.values()))["ts"] < cutoff:
            self._content.popitem(last=False)
        return gone

    def restore(self, seen: dict[str, Record]) -> list[Record]:
        """Load seen table records, oldest first; returns them in that order."""
        ordered = []
        for key, rec in sorted(seen.items(), key=lambda kv: kv[1]["ts"]):
            self._seen[key] = rec
            if "content" in rec:
                self._content[rec["content"]] = _where(rec)
            ordered.append(rec)
        return ordered
