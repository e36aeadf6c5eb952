"""The one way every ``storywatch`` command reports an error: a line on stderr, exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from config.exceptions import StorywatchError

__all__ = ["clean_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(func: F) -> F:
    """Turn any :class:`StorywatchError` into one line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StorywatchError as exc:
            click.echo(f"storywatch: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
