"""The clustering knobs, read from :class:`config.Settings` (see there for why each default)."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from streams.engine.story_index import DEFAULT_EXACT_MAX, DEFAULT_PROBES

__all__ = ["ClusterParams"]


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """The clustering knobs (see :class:`config.Settings` for why each default)."""

    story_threshold: float = 0.35
    dup_threshold: float = 0.90
    window_s: float = 72 * 3600.0
    max_event_lead_s: float = 3600.0  # an article's date counts at most this far past its record's
    lexical_weight: float = 0.30
    entity_share: float = 0.10
    entity_min: int = 6
    entity_override: float = 0.90
    candidates: int = 5
    merge_bridges: int = 3  # 0: never merge stories after the fact
    merge_score: float = 0.80
    merge_entity_share: float = 0.0  # a judged bridge needs this names share with the other
    window_both_ways: bool = False  # no joins by an article dated a window before the story
    index_exact_max: int = DEFAULT_EXACT_MAX
    index_probes: int = DEFAULT_PROBES

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
