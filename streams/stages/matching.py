"""The subscription-matching stage: a batch of story steps and the alert stage's verdict on
each (:class:`~streams.stages.alerts.Emerging`) in; the subscription alerts they fire out.

The emerging rule is the alert stage's, read from its output: it is not run again here, and
a story keeps one copy of its state (in the alert stage's table).

State: one :class:`~streams.subscriptions.matching.StoryMatchState` per story in a table (the
worker's changelog-backed table, or a dict in replay), merges followed with :mod:`.merges`,
and the stories' last activity (:class:`~streams.engine.expiry.InactiveKeys`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.expiry import InactiveKeys
from streams.stages.alerts import Emerging
from streams.stages.cluster import StoryStep
from streams.stages.merges import MergedStates
from streams.subscriptions.alert_events import match_alert
from streams.subscriptions.matching import Matcher, SemanticIndex, StoryMatchState, StoryUpdate
from streams.subscriptions.model import Subscription
from streams.time_ranges import iso_time

__all__ = ["MatchBatch", "MatchStage", "SubscriptionAlert", "Subscriptions"]

# Why 20: enough outlets to show a story's reach in an alert; the count is in source_count.
_SUMMARY_SOURCES = 20


@dataclass
class Subscriptions:
    """The enabled subscriptions as the stage matches them: a Matcher and a semantic index."""

    matcher: Matcher = field(default_factory=lambda: Matcher([]))
    semantic: SemanticIndex = field(default_factory=lambda: SemanticIndex([], np.zeros((0, 0))))
    by_id: dict[str, Subscription] = field(default_factory=dict)

    @classmethod
    def build(
        cls, enabled: Sequence[Subscription], encode: Callable[[list[str]], np.ndarray] | None
    ) -> Subscriptions:
        """``encode``: the model (for the semantic queries; None: none is matched)."""
        queried = any(s.filter.query is not None for s in enabled)
        semantic = (
            SemanticIndex.build(enabled, lambda texts: np.asarray(encode(list(texts))))
            if queried and encode is not None
            else SemanticIndex([], np.zeros((0, 0)))
        )
        return cls(Matcher(enabled), semantic, {s.id: s for s in enabled})

    def scores(self, steps: Sequence[StoryStep]) -> list[dict[str, float]]:
        """One matrix product for the batch: each step's story centroid against every query;
        per step, the queries that reached their threshold (the matcher's candidates)."""
        if not self.semantic.ids:
            return [{} for _ in steps]
        rows = [i for i, step in enumerate(steps) if step.centroid is not None]
        scores: list[dict[str, float]] = [{} for _ in steps]
        if rows:
            matrix: npt.NDArray[np.float32] = np.stack(
                [np.asarray(steps[i].centroid) for i in rows]
            )
            for i, row in zip(rows, self.semantic.hits(matrix), strict=True):
                scores[i] = row
        return scores


@dataclass(frozen=True, slots=True)
class SubscriptionAlert:
    """One alert to send (its CloudEvent), for a subscription."""

    step: int  # the position in the batch of the step that fired it
    subscription: Subscription
    trigger: str
    event: dict[str, Any]


@dataclass
class MatchBatch:
    """The stage's output for one batch; its state is written by :meth:`MatchStage.commit`
    once the alerts are sent."""

    alerts: list[SubscriptionAlert]
    states: MergedStates[StoryMatchState]


def _match_state(record: Mapping[str, Any] | None) -> StoryMatchState:
    # Records written before the stage read the alert stage's verdict also hold a copy of
    # the emerging rule's state beside "match": ignored (the alert stage's table has it).
    return StoryMatchState.from_record(record["match"]) if record else StoryMatchState()


def _match_record(state: StoryMatchState) -> dict[str, Any]:
    return {"match": state.to_record()}


@dataclass
class MatchStage:
    """Each (subscription, story, trigger) fires once (its dedup key is the alert's
    CloudEvent id and, hashed, the webhook-id); a merge fires nothing again for either part.
    ``source`` is the CloudEvents source of its alerts."""

    quiet: InactiveKeys  # the stories this stage keeps state for, by last activity
    source: str

    def reload(self, records: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Rebuild the activity index from the table (after a start or a rebalance)."""
        self.quiet.reload(records)

    def run(
        self,
        table: Mapping[str, Any],
        steps: Sequence[StoryStep],
        emerging: Sequence[Emerging | None],
        subscriptions: Subscriptions,
        scores: Sequence[Mapping[str, float]] | None = None,
    ) -> MatchBatch:
        """``emerging``: the alert stage's verdict per step (:attr:`AlertBatch.emerging`);
        ``scores``: :meth:`Subscriptions.scores` of ``steps`` (computed when None)."""
        if scores is None:
            scores = subscriptions.scores(steps)
        states = MergedStates(table, _match_state)
        alerts: list[SubscriptionAlert] = []
        for index, (step, verdict, semantic) in enumerate(
            zip(steps, emerging, scores, strict=True)
        ):
            when, event = step.when, step.assignment
            if step.absorbed_id is not None:
                # The survivor inherits what each subscription fired for the absorbed story:
                # the same (subscription, trigger) does not fire again for the merged story.
                _, state = states.follow_merge(
                    step.story_id, step.absorbed_id, StoryMatchState.absorb, self.quiet, when
                )
                state.size = max(state.size, event.story_size)
                state.source_count = max(state.source_count, event.source_count)
                continue
            assert verdict is not None  # the alert stage's verdict on an article's step
            story_id, state = states.get(step.story_id)
            self.quiet.touch(story_id, when)
            assignment = replace(event, story_id=story_id)
            update = StoryUpdate.from_assignment(assignment, text=step.text, emerging=verdict.fired)
            for match in subscriptions.matcher.observe(update, state, semantic):
                subscription = subscriptions.by_id[match.subscription_id]
                alert = match_alert(
                    match,
                    subscription,
                    _summary(assignment, state, verdict.urls),
                    source=self.source,
                    time=event.event_time,
                )
                alerts.append(SubscriptionAlert(index, subscription, match.trigger, alert))
        return MatchBatch(alerts, states)

    def commit(self, batch: MatchBatch, table: MutableMapping[str, Any]) -> None:
        """Write the batch's states (stories quiet past the window leave the table)."""
        batch.states.write_back(table, self.quiet, _match_record)


def _summary(event: Any, state: StoryMatchState, urls: Sequence[str]) -> dict[str, Any]:
    return {
        "story_id": event.story_id,
        "headline": event.headline,
        "size": event.story_size,
        "source_count": event.source_count,
        "sources": list(state.sources.values())[:_SUMMARY_SOURCES],
        "keywords": list(event.keywords or []),
        "sample_urls": list(urls),
        "first_seen": iso_time(event.first_seen),
        "last_seen": iso_time(event.last_seen),
    }
