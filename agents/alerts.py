"""Agent: evaluate alert rules on story events; emit CloudEvents to the alerts topic."""

from __future__ import annotations

from typing import Any

from faust import StreamT

from streams.app import app, metrics, settings, tables, topics
from streams.engine.alerts import EMERGING, EmergingRule, EmergingState, cloud_event
from streams.records import StoryEvent

__all__ = ["emerging_rule", "evaluate_alerts"]

emerging_rule = EmergingRule(
    min_articles=settings.emerging_min_articles,
    min_sources=settings.emerging_min_sources,
    window_s=settings.emerging_window_hours * 3600.0,
)


@app.agent(topics.stories)
async def evaluate_alerts(stream: StreamT[StoryEvent]) -> None:
    """One alert per story per rule; the CloudEvent id (story + rule) makes it idempotent.

    Story events come in small batches; each story's rule state is written to its table once
    per batch (after the batch's alerts are sent, so a crash re-sends, never drops, one).
    """
    async for events in stream.take(settings.stage_batch_size, settings.stage_max_wait_s):
        states: dict[str, EmergingState] = {}
        observed: set[str] = set()  # stories whose state this batch changed
        for event in events:
            state = states.get(event.story_id)
            if state is None:
                record = tables.alerts.get(event.story_id)
                state = EmergingState.from_record(record) if record else EmergingState()
                states[event.story_id] = state
            if state.fired:
                continue
            observed.add(event.story_id)
            alert = emerging_rule.observe(state, event.to_assignment())
            if alert is not None:
                await _send_alert(event, alert)
        for story_id in observed:
            tables.alerts[story_id] = states[story_id].to_record()


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
    )
    metrics.alerts_emitted.labels(emerging_rule.name).inc()
