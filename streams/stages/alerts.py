"""The emerging-alert stage: a batch of story steps in; the alerts they fire and, per step,
the rule's verdict on the step's story (which the match stage reads) out.

State: one :class:`~streams.engine.emerging.EmergingState` per story in a table (the worker's
changelog-backed table, or a dict in replay), merges followed with :mod:`.merges`, and the
stories' last activity (:class:`~streams.engine.expiry.InactiveKeys`), which bounds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from streams.contracts.cloudevents import cloud_event
from streams.engine.emerging import EMERGING, EmergingRule, EmergingState
from streams.engine.expiry import InactiveKeys
from streams.stages.cluster import StoryStep
from streams.stages.merges import MergedStates, absorb_emerging

__all__ = ["Alert", "AlertBatch", "AlertStage", "Emerging"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert to send: the CloudEvent, for the story it fired for (its key)."""

    step: int  # the position in the batch of the step that fired it
    story_id: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Emerging:
    """The rule's verdict on a story after a step: fired (on this step or before), and the
    story's sample links."""

    fired: bool
    urls: tuple[str, ...]


@dataclass
class AlertBatch:
    """The stage's output for one batch; its state is written by :meth:`AlertStage.commit`
    once the alerts are sent (a crash in between re-sends, never drops, one)."""

    alerts: list[Alert]
    emerging: list[Emerging | None]  # per step (None for a merge)
    states: MergedStates[EmergingState]


def _emerging_state(record: dict[str, Any] | None) -> EmergingState:
    return EmergingState.from_record(record) if record else EmergingState()


@dataclass
class AlertStage:
    """One rule over the story steps; ``source`` is the CloudEvents source of its alerts."""

    rule: EmergingRule
    quiet: InactiveKeys  # the stories this stage keeps state for, by last activity
    source: str

    def reload(self, records: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Rebuild the activity index from the table (after a start or a rebalance)."""
        self.quiet.reload(records)

    def run(self, table: Mapping[str, Any], steps: Sequence[StoryStep]) -> AlertBatch:
        """One alert per story: a story that fired never fires again, nor does a merge of
        two stories re-fire what fired for either part (the states are folded)."""
        states = MergedStates(table, _emerging_state)
        alerts: list[Alert] = []
        emerging: list[Emerging | None] = []
        for index, step in enumerate(steps):
            when = step.when
            if step.absorbed_id is not None:
                # The survivor inherits what fired for the absorbed story: a merge re-fires
                # nothing; the absorbed id now redirects to the survivor (and expires).
                states.follow_merge(
                    step.story_id, step.absorbed_id, absorb_emerging, self.quiet, when
                )
                emerging.append(None)
                continue
            story_id, state = states.get(step.story_id)
            self.quiet.touch(story_id, when)
            if not state.fired:
                assignment = replace(step.assignment, story_id=story_id)
                data = self.rule.observe(state, assignment)
                if data is not None:
                    alerts.append(Alert(index, story_id, self._event(story_id, data, step)))
            emerging.append(Emerging(state.fired, tuple(state.urls)))
        return AlertBatch(alerts, emerging, states)

    def commit(self, batch: AlertBatch, table: MutableMapping[str, Any]) -> None:
        """Write the batch's states (stories quiet past the window leave the table)."""
        batch.states.write_back(table, self.quiet, EmergingState.to_record)

    def _event(self, story_id: str, data: dict[str, Any], step: StoryStep) -> dict[str, Any]:
        return cloud_event(
            EMERGING,
            subject=story_id,
            data=data,
            source=self.source,
            event_id=f"{story_id}:{self.rule.name}",
            time=step.assignment.event_time,
        )
