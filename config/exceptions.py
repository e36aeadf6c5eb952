"""The project-wide base exception and the settings errors."""

from __future__ import annotations

__all__ = ["SettingsError", "StorywatchError"]


class StorywatchError(Exception):
    """Base of every error Storywatch raises on purpose; its message says what to do next."""


class SettingsError(StorywatchError, ValueError):
    """A setting is missing or invalid."""
