"""What a backtest changes: ``--set NAME=VALUE`` settings and a ``--rules`` file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.exceptions import SettingsError
from config.settings import Settings
from streams.engine.emerging import EmergingRule

__all__ = ["apply_overrides", "load_rules", "parse_overrides"]

_PREFIX = "STORYWATCH_"


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["story_threshold=0.5", "STORYWATCH_EMERGING_MIN_ARTICLES=3"]`` -> field names."""
    names = set(Settings.model_fields)
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"--set {pair!r}: write NAME=VALUE, e.g. story_threshold=0.45")
        key = name.strip()
        if key.upper().startswith(_PREFIX):
            key = key[len(_PREFIX) :]
        key = key.lower().replace("-", "_")
        if key not in names:
            close = sorted(n for n in names if key.split("_")[0] in n)[:6]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SettingsError(
                f"--set {name.strip()}: no such setting{hint}; the names are those of "
                "config/settings.py (STORYWATCH_* without the prefix)"
            )
        found[key] = value.strip()
    return found


def apply_overrides(base: Settings, overrides: dict[str, str]) -> Settings:
    """A copy of ``base`` with ``overrides``, validated like the settings themselves."""
    if not overrides:
        return base
    values = {**base.model_dump(), **overrides}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--set {'.'.join(str(p) for p in err['loc'])}={overrides.get(str(err['loc'][0]))}: "
            f"{err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid override ({problems}): fix the value") from None


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    min_articles: int = Field(ge=1)
    min_sources: int = Field(ge=1)
    window_hours: float = Field(gt=0)


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[_RuleSpec] = Field(min_length=1)


def load_rules(path: Path) -> list[EmergingRule]:
    """Emerging rules from a JSON file: ``{"rules": [{"name", "min_articles",
    "min_sources", "window_hours"}, ...]}``; every rule runs side by side."""
    if not path.is_file():
        raise SettingsError(f"--rules {path}: no such file; pass a JSON file of rules")
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        spec = _RulesFile.model_validate(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"--rules {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(
            f"--rules {path}: {problems}; expected "
            '{"rules": [{"name": "fast", "min_articles": 3, "min_sources": 2, '
            '"window_hours": 2}]}'
        ) from None
    names = [r.name for r in spec.rules]
    if len(set(names)) != len(names):
        raise SettingsError(f"--rules {path}: rule names must be unique, got {names}")
    return [
        EmergingRule(r.min_articles, r.min_sources, r.window_hours * 3600.0, name=r.name)
        for r in spec.rules
    ]
