"""The clustering knobs, read from :class:`config.Settings` (see there for why each default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.settings import Settings

__all__ = ["ClusterParams"]


def _default(name: str, scale: float = 1.0) -> Any:
    """The default of setting ``name`` (times ``scale``): each default is written once, in
    :class:`config.Settings`, with its reason."""
    value = Settings.model_fields[name].default
    return value * scale if scale != 1.0 else value


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """The clustering knobs (see :class:`config.Settings` for why each default)."""

    story_threshold: float = _default("story_threshold")
    dup_threshold: float = _default("dup_threshold")
    window_s: float = _default("story_window_hours", 3600.0)
    max_event_lead_s: float = _default("max_event_lead_minutes", 60.0)
    lexical_weight: float = _default("lexical_weight")
    entity_share: float = _default("entity_share")
    entity_min: int = _default("entity_min")
    entity_override: float = _default("entity_override")
    candidates: int = _default("candidate_stories")
    merge_bridges: int = _default("merge_bridges")  # 0: never merge stories after the fact
    merge_score: float = _default("merge_score")
    merge_entity_share: float = _default("merge_entity_share")
    window_both_ways: bool = _default("window_both_ways")
    index_exact_max: int = _default("index_exact_max")
    index_probes: int = _default("index_probes")

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusterParams:
        return cls(
            story_threshold=settings.story_threshold,
            dup_threshold=settings.dup_threshold,
            window_s=settings.story_window_hours * 3600.0,
            max_event_lead_s=settings.max_event_lead_minutes * 60.0,
            lexical_weight=settings.lexical_weight,
            entity_share=settings.entity_share,
            entity_min=settings.entity_min,
            entity_override=settings.entity_override,
            candidates=settings.candidate_stories,
            merge_bridges=settings.merge_bridges,
            merge_score=settings.merge_score,
            merge_entity_share=settings.merge_entity_share,
            window_both_ways=settings.window_both_ways,
            index_exact_max=settings.index_exact_max,
            index_probes=settings.index_probes,
        )
