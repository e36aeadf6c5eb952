"""Who may read the dashboard's data: everyone by default, or with
``STORYWATCH_DASHBOARD_TOKEN_REQUIRED=true`` only holders of a STORYWATCH_API_TOKENS token."""

from __future__ import annotations

from typing import cast

from aiohttp import web
from faust.web import Request

from config.groups import WebSettings
from streams.web.http import ApiTokens

__all__ = ["ReadAccess"]


class ReadAccess:
    def __init__(self, web: WebSettings, tokens: ApiTokens) -> None:
        self.required = web.dashboard_token_required
        self._tokens = tokens

    def check(self, request: Request, *, query_token: bool = False) -> None:
        """Nothing when reads are public; else 401 without a known bearer token
        (``query_token``: also ``?access_token=``, for the browser's EventSource)."""
        if self.required:
            self._tokens.owner(request, query_token=query_token)

    def who(self, request: Request, *, query_token: bool = False) -> str:
        """Whom a request counts against for fair shares: its token's owner when it carries
        one (401 for an unknown token), else its client address (public reads)."""
        self.check(request, query_token=query_token)
        presented = request.headers.get("Authorization") or (
            query_token and request.query.get("access_token")
        )
        if presented:
            return self._tokens.owner(request, query_token=query_token)
        native = cast(web.Request, request)
        return f"address {native.remote or 'unknown'}"
