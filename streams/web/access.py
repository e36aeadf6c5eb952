"""Who may read the dashboard's data: everyone by default, or with
``STORYWATCH_DASHBOARD_TOKEN_REQUIRED=true`` only holders of a STORYWATCH_API_TOKENS token."""

from __future__ import annotations

from faust.web import Request

from config.settings import Settings
from streams.web.http import ApiTokens

__all__ = ["ReadAccess"]


class ReadAccess:
    def __init__(self, settings: Settings, tokens: ApiTokens) -> None:
        self.required = settings.dashboard_token_required
        self._tokens = tokens

    def check(self, request: Request, *, query_token: bool = False) -> None:
        """Nothing when reads are public; else 401 without a known bearer token
        (``query_token``: also ``?access_token=``, for the browser's EventSource)."""
        if self.required:
            self._tokens.owner(request, query_token=query_token)
