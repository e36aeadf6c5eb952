"""Agent: evaluate alert rules on story events; emit CloudEvents to the alerts topic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from faust import StreamT
from mode.signals import BaseSignalT

from streams.app import app, metrics, settings, tables, topics
from streams.engine.alerts import EMERGING, EmergingRule, EmergingState, cloud_event
from streams.engine.expiry import InactiveKeys
from streams.record_headers import CLOUDEVENT_HEADERS
from streams.records import StoryEvent
from streams.stages.merges import MergedStates, absorb_emerging

__all__ = ["emerging_rule", "evaluate_alerts", "quiet_stories"]

emerging_rule = EmergingRule.from_settings(settings)
# The stories this stage keeps rule state for, by last activity: a story the engine has
# expired (inactive past the story window) gets no more events, so its state is dropped.
quiet_stories = InactiveKeys(settings.story_window_hours * 3600.0)
_reload_needed = [True]


@app.on_rebalance_complete.connect
def _on_rebalance(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    _reload_needed[0] = True


def _reload_activity() -> None:
    """Rebuild the activity index from the table (after a start or a rebalance)."""
    quiet_stories.reload(tables.alerts.items())
    _reload_needed[0] = False


@app.agent(topics.stories)
async def evaluate_alerts(stream: StreamT[StoryEvent]) -> None:
    """One alert per story per rule; the CloudEvent id (story + rule) makes it idempotent.
    A ``merged`` event folds the absorbed story's rule state into the survivor's: what fired
    for either part does not fire again for the merged story.

    Story events come in small batches; each story's rule state is written to its table once
    per batch (after the batch's alerts are sent, so a crash re-sends, never drops, one).
    Stories quiet for longer than the story window leave the table.
    """
    async for events in stream.take(settings.stage_batch_size, settings.stage_max_wait_s):
        if _reload_needed[0]:
            _reload_activity()
        await _evaluate_batch(events)


def _emerging_state(record: dict[str, Any] | None) -> EmergingState:
    return EmergingState.from_record(record) if record else EmergingState()


async def _evaluate_batch(events: list[StoryEvent]) -> None:
    states = MergedStates(tables.alerts, _emerging_state)
    for event in events:
        when = max(event.last_seen, event.event_time)
        if event.is_merge and event.absorbed_id:
            # The survivor inherits what fired for the absorbed story: a merge re-fires
            # nothing; the absorbed id now redirects to the survivor (and expires).
            if states.merge(event.story_id, event.absorbed_id, absorb_emerging):
                quiet_stories.touch(event.absorbed_id, when)
            quiet_stories.touch(states.resolve(event.story_id), when)
            continue
        story_id, state = states.get(event.story_id)
        quiet_stories.touch(story_id, when)
        if state.fired:
            continue
        assignment = replace(event.to_assignment(), story_id=story_id)
        alert = emerging_rule.observe(state, assignment)
        if alert is not None:
            await _send_alert(event, story_id, alert)
    states.write_back(tables.alerts, quiet_stories, EmergingState.to_record)


async def _send_alert(event: StoryEvent, story_id: str, alert: dict[str, Any]) -> None:
    """``story_id``: the story ``event`` lives on as (a late event of a merged story's)."""
    await topics.alerts.send(
        key=story_id,
        value=cloud_event(
            EMERGING,
            subject=story_id,
            data=alert,
            source=f"/storywatch/{settings.app_id}",
            event_id=f"{story_id}:{emerging_rule.name}",
            time=event.event_time,
        ),
        timestamp=event.produced_at,  # the causing article's Kafka time (see agents/cluster)
        headers=CLOUDEVENT_HEADERS,
    )
    metrics.alerts_emitted.labels(emerging_rule.name).inc()
