"""Named settings profiles: STORYWATCH_PROFILE=accurate sets several knobs at once.

A profile only fills in defaults: any STORYWATCH_* variable set explicitly wins over it.
``fast`` is the plain defaults. ``accurate`` swaps the encoder and carries the engine's
cosine bars to that encoder's scale (docs/QUALITY.md "Third round" has both sets of
numbers and the speed cost).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "apply_profile"]

PROFILES: dict[str, dict[str, Any]] = {
    "fast": {},
    # bge-small-en-v1.5 with the engine's cosine bars carried to its scale (unrelated
    # headlines/articles meet at a median cosine of 0.52 on bge, 0.21 on MiniLM: t ->
    # 0.52 + (t - 0.21) x 0.48 / 0.79) and the story bar chosen on half 0 of both dev files
    # (0.45 on MiniLM's scale): bench/encoder_quality.py, docs/QUALITY.md "Third round".
    "accurate": {
        "model": "bge-small-en-v1.5",
        "story_threshold": 0.666,
        "dup_threshold": 0.939,
        "entity_override": 0.939,
        "merge_score": 0.878,
    },
}


def apply_profile(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (field name -> value, as read from the environment) with the named
    profile's values added for every field not given."""
    name = data.get("profile", "fast")
    values = PROFILES.get(str(name))
    if values is None:
        return data  # the field's own validation names the allowed profiles
    return {**values, **data}
