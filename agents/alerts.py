"""Agent: the stages after clustering, on story events: emerging alerts (CloudEvents on the
alerts topic), then subscription matching on the alert stage's verdict (see
agents/subscriptions.py). One agent runs both, so the matcher reads the emerging rule's
result for the same event instead of running the rule a second time."""

from __future__ import annotations

from typing import Any

from faust import StreamT
from mode.signals import BaseSignalT

from agents.subscriptions import match_batch, match_stage, prepare_matching
from streams.app import app, metrics, settings, tables, topics
from streams.contracts.cloudevents import CLOUDEVENT_HEADERS
from streams.contracts.records import StoryEvent
from streams.engine.emerging import EmergingRule
from streams.engine.expiry import InactiveKeys
from streams.stages.alerts import AlertBatch, AlertStage
from streams.stages.cluster import StoryStep

__all__ = ["alert_stage", "emerging_rule", "evaluate_alerts", "quiet_stories"]

emerging_rule = EmergingRule.from_settings(settings.alerts)
# The stories this stage keeps rule state for, by last activity: a story the engine has
# expired (inactive past the story window) gets no more events, so its state is dropped.
quiet_stories = InactiveKeys(settings.story_window_hours * 3600.0)
alert_stage = AlertStage(emerging_rule, quiet_stories, f"/storywatch/{settings.app_id}")
_reload_needed = [True]


@app.on_rebalance_complete.connect
def _on_rebalance(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    _reload_needed[0] = True


def _reload_activity() -> None:
    """Rebuild the stages' activity indexes from their tables (after a start or a
    rebalance)."""
    alert_stage.reload(tables.alerts.items())
    match_stage.reload(tables.matches.items())
    _reload_needed[0] = False


@app.agent(topics.stories)
async def evaluate_alerts(stream: StreamT[StoryEvent]) -> None:
    """One alert per story per rule; the CloudEvent id (story + rule) makes it idempotent.
    A ``merged`` event folds the absorbed story's rule state into the survivor's: what fired
    for either part does not fire again for the merged story. Then the batch is matched
    against the subscriptions, with the rule's verdict on each event.

    Story events come in small batches; each story's rule state is written to its table once
    per batch (after the batch's alerts are sent, so a crash re-sends, never drops, one).
    Stories quiet for longer than the story window leave the table.
    """
    async for events in stream.take(settings.stage_batch_size, settings.stage_max_wait_s):
        await prepare_matching()
        if _reload_needed[0]:
            _reload_activity()
        steps = [StoryStep.of_event(event) for event in events]
        batch = alert_stage.run(tables.alerts, steps)
        await _send_alerts(events, batch)
        await match_batch(steps, batch.emerging)
        alert_stage.commit(batch, tables.alerts)


async def _send_alerts(events: list[StoryEvent], batch: AlertBatch) -> None:
    for alert in batch.alerts:
        await topics.alerts.send(
            key=alert.story_id,
            value=alert.event,
            # the causing article's Kafka time (see agents/cluster)
            timestamp=events[alert.step].produced_at,
            headers=CLOUDEVENT_HEADERS,
        )
        metrics.alerts_emitted.labels(emerging_rule.name).inc()
