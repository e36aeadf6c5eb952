"""The settings table of docs/DEPLOYMENT.md, generated from :class:`config.Settings`.

Each row is a variable, its default and what it does with why the default: the field's
description and the "why" comment written above it in config/settings.py. The doc is written
from the model, never by hand: ``python -m config.reference --write docs/DEPLOYMENT.md``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from config.settings import Settings

__all__ = ["SECTION", "default_text", "replace_table", "settings_table"]

#: The heading of the doc section the table lives under.
SECTION = "## Every setting"
_SOURCE = Path(__file__).with_name("settings.py")
# Defaults that depend on the machine (the home folder) are written as the user sees them.
_HOME_DEFAULTS = {"kafka_home": "~/.cache/storywatch", "model_dir": "~/.cache/storywatch/models"}


def default_text(name: str) -> str:
    """A setting's default as the table writes it."""
    if name in _HOME_DEFAULTS:
        return f"`{_HOME_DEFAULTS[name]}`"
    default = Settings.model_fields[name].default
    if default is None:
        return "unset"
    if default == "":
        return '`""`'
    return f"`{default}`"


def _field_notes() -> dict[str, str]:
    """Each field's "why" comment (the lines above it) and inline comment, from the source."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in _SOURCE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# ---"):
            pending = []
        elif stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
        elif match := re.match(r"    ([a-z_0-9]+): [^=]+=", line):
            inline = line.split("  # ", 1)[1] if "  # " in line else ""
            notes[match.group(1)] = " ".join([*pending, inline]).strip()
            pending = []
        else:
            pending = []
    return notes


def settings_table() -> str:
    """The markdown table: a header and one row per setting, in the model's order."""
    notes = _field_notes()
    rows = ["| variable | default | what, and why the default |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        what = " ".join(x for x in (field.description or "", notes.get(name, "")) if x)
        rows.append(
            f"| `STORYWATCH_{name.upper()}` | {default_text(name)} | {what.replace('|', '/')} |"
        )
    return "\n".join(rows)


def replace_table(doc: str) -> str:
    """``doc`` with the table under :data:`SECTION` replaced by :func:`settings_table` (the
    section's prose before and after the table is kept)."""
    head, found, rest = doc.partition(SECTION)
    if not found:
        raise ValueError(f"no {SECTION!r} heading: add it where the table belongs")
    lines = rest.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise ValueError(f"no table under {SECTION!r}: put a line starting with '|' there")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return head + found + "\n".join([*lines[:start], settings_table(), *lines[end:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="rewrite this doc's table in place")
    args = parser.parse_args()
    if args.write is None:
        print(settings_table())
        return
    args.write.write_text(replace_table(args.write.read_text()))


if __name__ == "__main__":
    main()
