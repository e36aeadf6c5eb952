"""Agent: evaluate alert rules on story events; emit CloudEvents to the alerts topic."""

from __future__ import annotations

from typing import Any

from faust import StreamT
from mode.signals import BaseSignalT

from streams.app import app, metrics, settings, tables, topics
from streams.engine.alerts import EMERGING, EmergingRule, EmergingState, cloud_event
from streams.engine.expiry import InactiveKeys
from streams.records import StoryEvent

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

    Story events come in small batches; each story's rule state is written to its table once
    per batch (after the batch's alerts are sent, so a crash re-sends, never drops, one).
    Stories quiet for longer than the story window leave the table.
    """
    async for events in stream.take(settings.stage_batch_size, settings.stage_max_wait_s):
        if _reload_needed[0]:
            _reload_activity()
        states: dict[str, EmergingState] = {}
        for event in events:
            state = states.get(event.story_id)
            if state is None:
                record = tables.alerts.get(event.story_id)
                state = EmergingState.from_record(record) if record else EmergingState()
                states[event.story_id] = state
            quiet_stories.touch(event.story_id, max(event.last_seen, event.event_time))
            if state.fired:
                continue
            alert = emerging_rule.observe(state, event.to_assignment())
            if alert is not None:
                await _send_alert(event, alert)
        for story_id, state in states.items():
            last = quiet_stories.last_activity(story_id)
            tables.alerts[story_id] = {**state.to_record(), "last_seen": last}
        for story_id in quiet_stories.pop_expired():
            tables.alerts.pop(story_id, None)


async def _send_alert(event: StoryEvent, alert: dict[str, Any]) -> None:
    await topics.alerts.send(
        key=event.story_id,
        value=cloud_event(
            EMERGING,
            subject=event.story_id,
            data=alert,
            source=f"/storywatch/{settings.app_id}",
            event_id=f"{event.story_id}:{emerging_rule.name}",
            time=event.event_time,
        ),
        timestamp=event.produced_at,  # the causing article's Kafka time (see agents/cluster)
    )
    metrics.alerts_emitted.labels(emerging_rule.name).inc()
