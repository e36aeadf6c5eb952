"""Typed settings and the project-wide base exception."""

from config.exceptions import SettingsError, StorywatchError
from config.settings import DEFAULT_MODEL, Settings, load_settings

__all__ = ["DEFAULT_MODEL", "Settings", "SettingsError", "StorywatchError", "load_settings"]
