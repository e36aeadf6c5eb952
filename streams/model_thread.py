"""The one thread the embedding model runs on, shared by every agent that embeds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ModelThread"]

_T = TypeVar("_T")


class ModelThread:
    """Runs model calls off the event loop, one at a time: the model is not re-entrant (the
    fast tokenizer refuses concurrent use) and torch already uses every core inside a call.
    The thread is created on first use, never at import."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    def run(self, func: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue ``func(*args)`` on the model's thread; the event loop goes on meanwhile."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="storywatch-model"
            )
        return asyncio.get_running_loop().run_in_executor(self._executor, func, *args)
