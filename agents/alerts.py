"""Agent: evaluate alert rules on story events; emit CloudEvents to the alerts topic."""

from __future__ import annotations

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
    """One alert per story per rule; the CloudEvent id (story + rule) makes it idempotent."""
    async for event in stream:
        record = tables.alerts.get(event.story_id)
        state = EmergingState.from_record(record) if record else EmergingState()
        if state.fired:
            continue
        alert = emerging_rule.observe(state, event.to_assignment())
        tables.alerts[event.story_id] = state.to_record()
        if alert is None:
            continue
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
