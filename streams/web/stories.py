"""The read-only story API, served from this worker's read model (streams/read_model):
``/api/stories``, ``/api/stories/{id}``, ``/api/stories/{id}/articles``,
``/api/stories/{id}/timeline`` and ``/api/alerts/recent``."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.engine.clustering import story_keywords
from streams.read_model import SORTS, BadCursor, StoryQuery, StoryReadModel
from streams.read_model.story import words_of
from streams.web.access import ReadAccess
from streams.web.http import HttpError, json_view

__all__ = ["register_story_views", "story_summary"]

# Why 50: a screenful of stories; the API pages on with next_cursor.
_DEFAULT_LIMIT = 50
# Why 1,000: one response stays a few hundred KiB; page on for more.
_MAX_LIMIT = 1000
# Why 50 / 200: a story view's first articles; pages of the rest.
_DETAIL_ARTICLES = 50
_MAX_ARTICLES = 200
# Why 200 characters: a search is a few words; longer is a mistake.
_MAX_QUERY_CHARS = 200


def story_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The public view of a story table record (no vectors)."""
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


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise HttpError(
            400, f"{name} must be an integer {low}-{high}, e.g. ?{name}={default}", name
        )
    return value


def story_query(request: Request) -> StoryQuery:
    """``?sort=&q=&source=&min_size=&limit=&cursor=``, validated (400 names the field)."""
    sort = request.query.get("sort") or "growth"
    if sort not in SORTS:
        raise HttpError(400, f"sort must be one of {', '.join(SORTS)}", "sort")
    text = request.query.get("q", "")
    if len(text) > _MAX_QUERY_CHARS:
        raise HttpError(400, f"q is over {_MAX_QUERY_CHARS} characters: search fewer words", "q")
    return StoryQuery(
        sort=sort,
        words=tuple(sorted(words_of(text))),
        source=request.query.get("source") or None,
        min_size=_int(request, "min_size", 1, 1, 10**9),
        limit=_int(request, "limit", _DEFAULT_LIMIT, 1, _MAX_LIMIT),
        cursor=request.query.get("cursor") or None,
    )


def _not_here(story_id: str) -> HttpError:
    return HttpError(
        404,
        f"story {story_id!r} is not active: stories leave after STORYWATCH_STORY_WINDOW_HOURS "
        "without articles (their events stay on the stories topic); list active ones at "
        "/api/stories",
        "story_id",
    )


def register_story_views(app: faust.App, model: StoryReadModel, access: ReadAccess) -> None:
    """Add the story API views."""

    @app.page("/api/stories")
    class Stories(View):
        @json_view
        async def get(self, request: Request) -> Response:
            access.check(request)
            query = story_query(request)
            try:
                page = model.query(query)
            except BadCursor as exc:
                raise HttpError(400, str(exc), "cursor") from None
            return self.json(
                {
                    "active_stories": len(model),
                    "caught_up": model.live,
                    "sort": query.sort,
                    "stories": page.stories,
                    "next_cursor": page.next_cursor,
                    # True when the request stopped after examining its share of stories
                    # (bounded work per request): more matches may follow next_cursor.
                    "partial": page.partial,
                }
            )

    @app.page("/api/stories/{story_id}")
    class Story(View):
        @json_view
        async def get(self, request: Request, story_id: str) -> Response:
            access.check(request)
            found = model.detail(story_id, _DETAIL_ARTICLES)
            if found is None:
                raise _not_here(story_id)
            return self.json(found)

    @app.page("/api/stories/{story_id}/articles")
    class StoryArticles(View):
        @json_view
        async def get(self, request: Request, story_id: str) -> Response:
            access.check(request)
            limit = _int(request, "limit", _DETAIL_ARTICLES, 1, _MAX_ARTICLES)
            try:
                found = model.articles(story_id, request.query.get("cursor") or None, limit)
            except BadCursor as exc:
                raise HttpError(400, str(exc), "cursor") from None
            if found is None:
                raise _not_here(story_id)
            articles, cursor = found
            story_id = model.merged_into(story_id) or story_id
            return self.json({"story_id": story_id, "articles": articles, "next_cursor": cursor})

    @app.page("/api/stories/{story_id}/timeline")
    class StoryTimeline(View):
        @json_view
        async def get(self, request: Request, story_id: str) -> Response:
            access.check(request)
            found = model.timeline(story_id)
            if found is None:
                raise _not_here(story_id)
            return self.json(found)

    @app.page("/api/alerts/recent")
    class RecentAlerts(View):
        @json_view
        async def get(self, request: Request) -> Response:
            access.check(request)
            limit = _int(request, "limit", 100, 1, 500)
            return self.json({"alerts": model.recent_alerts(limit)})
