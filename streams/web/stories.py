"""The story pages: the live dashboard at ``/`` and the read-only ``/api/stories``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from streams.engine.clustering import story_keywords
from streams.tables import PipelineTables

__all__ = ["register_story_views", "story_summary"]

# Why 50: a dashboard row per story; more than a screenful is noise, the API takes ?limit=.
_DEFAULT_LIMIT = 50
_MAX_LIMIT = 1000

_STATIC = Path(__file__).with_name("static")


@lru_cache(maxsize=8)
def _page(name: str) -> str:
    """A static page, read on first use (never at import)."""
    return (_STATIC / name).read_text(encoding="utf-8")


def story_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The public view of a story record (no vectors)."""
    return {
        "story_id": record["id"],
        "headline": record["headline"],
        "size": record["size"],
        "source_count": len(record["sources"]),
        "first_seen": record["first_seen"],
        "last_seen": record["last_seen"],
        "keywords": _keywords(record),
    }


def _keywords(record: dict[str, Any]) -> list[str]:
    """The record's kept top terms; re-ranked from its profile for records written before."""
    kept = record.get("keywords")
    return list(kept) if kept is not None else story_keywords(record.get("terms", {}))


def register_story_views(app: faust.App, tables: PipelineTables) -> None:
    """Add the dashboard ``/`` and ``/api/stories``."""

    @app.page("/")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.html(_page("dashboard.html"))

    @app.page("/api/stories")
    class Stories(View):
        async def get(self, request: Request) -> Response:
            try:
                limit = min(_MAX_LIMIT, max(1, int(request.query.get("limit", _DEFAULT_LIMIT))))
            except ValueError:
                return self.json({"error": "limit must be an integer, e.g. ?limit=50"}, status=400)
            records = [r for r in tables.stories.values() if r is not None]
            records.sort(key=lambda r: (r["size"], r["last_seen"]), reverse=True)
            return self.json(
                {
                    "active_stories": len(records),
                    "stories": [story_summary(r) for r in records[:limit]],
                }
            )
