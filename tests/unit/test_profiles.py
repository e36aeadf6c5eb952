"""STORYWATCH_PROFILE: a named set of defaults that explicit variables override."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from config.exceptions import SettingsError
from config.profiles import PROFILES
from config.settings import DEFAULT_MODEL, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("STORYWATCH_"):
            monkeypatch.delenv(name)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def test_fast_is_the_plain_defaults() -> None:
    assert Settings().profile == "fast" and PROFILES["fast"] == {}
    assert Settings().model_dump() == Settings(profile="fast").model_dump()
    assert Settings().model == DEFAULT_MODEL


def test_headlines_sets_its_values_and_explicit_variables_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accurate = PROFILES["headlines"]
    assert accurate["model"] != DEFAULT_MODEL  # it names the accurate encoder
    monkeypatch.setenv("STORYWATCH_PROFILE", "headlines")
    s = load_settings()
    for field, value in accurate.items():
        assert getattr(s, field) == value, field
    monkeypatch.setenv("STORYWATCH_STORY_THRESHOLD", "0.42")
    monkeypatch.setenv("STORYWATCH_MODEL", DEFAULT_MODEL)
    load_settings.cache_clear()
    s = load_settings()
    assert s.story_threshold == 0.42 and s.model == DEFAULT_MODEL  # explicit wins
    assert s.dup_threshold == accurate.get("dup_threshold", Settings().dup_threshold)


def test_an_unknown_profile_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYWATCH_PROFILE", "turbo")
    with pytest.raises(SettingsError, match="STORYWATCH_PROFILE"):
        load_settings()


def test_headlines_bounds_the_story_window_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile turns window_both_ways on (off in the plain defaults), and the engine's
    parameters carry it."""
    from streams.engine.params import ClusterParams

    assert Settings().window_both_ways is False
    monkeypatch.setenv("STORYWATCH_PROFILE", "headlines")
    s = load_settings()
    assert s.window_both_ways is True
    assert ClusterParams.from_settings(s.engine).window_both_ways is True
    monkeypatch.setenv("STORYWATCH_WINDOW_BOTH_WAYS", "false")
    load_settings.cache_clear()
    assert load_settings().window_both_ways is False  # explicit wins
