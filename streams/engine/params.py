"""The clustering knobs, built from the engine's settings group (config/groups.py); each
default is the setting's own (see :class:`config.Settings` for why each default)."""

from __future__ import annotations

from dataclasses import dataclass

from config.groups import EngineSettings
from config.settings import setting_default as _default

__all__ = ["ClusterParams"]


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
    def from_settings(cls, engine: EngineSettings) -> ClusterParams:
        return cls(
            story_threshold=engine.story_threshold,
            dup_threshold=engine.dup_threshold,
            window_s=engine.story_window_hours * 3600.0,
            max_event_lead_s=engine.max_event_lead_minutes * 60.0,
            lexical_weight=engine.lexical_weight,
            entity_share=engine.entity_share,
            entity_min=engine.entity_min,
            entity_override=engine.entity_override,
            candidates=engine.candidate_stories,
            merge_bridges=engine.merge_bridges,
            merge_score=engine.merge_score,
            merge_entity_share=engine.merge_entity_share,
            window_both_ways=engine.window_both_ways,
            index_exact_max=engine.index_exact_max,
            index_probes=engine.index_probes,
        )
