"""Agent: the stages after clustering, on story events: emerging alerts (CloudEvents on the
alerts topic), then subscription matching on the alert stage's verdict (see
agents/subscriptions.py). One agent runs both, so the matcher reads the emerging rule's
result for the same event instead of running the rule a second time."""

from __future__ import annotations

from typing import Any

from faust import StreamT
from faust.types import AgentT
from mode.signals import BaseSignalT

from agents.glue import StageAgent
from agents.subscriptions import SubscriptionMatching
from streams.contracts.cloudevents import CLOUDEVENT_HEADERS
from streams.contracts.records import StoryEvent
from streams.engine.emerging import EmergingRule
from streams.engine.expiry import InactiveKeys
from streams.pipeline import Pipeline
from streams.stages.alerts import AlertBatch, AlertStage
from streams.stages.cluster import StoryStep

__all__ = ["AlertAgent", "register"]


class AlertAgent(StageAgent):
    """The stages on ``stories``: the emerging rule (the alert stage), then subscription
    matching on its verdict."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        settings = pipeline.settings
        self.emerging_rule = EmergingRule.from_settings(settings.alerts)
        # The stories this stage keeps rule state for, by last activity: a story the engine
        # has expired (inactive past the story window) gets no more events, so its state is
        # dropped.
        self.quiet_stories = InactiveKeys(settings.engine.story_window_hours * 3600.0)
        self.alert_stage = AlertStage(
            self.emerging_rule, self.quiet_stories, f"/storywatch/{self.worker.app_id}"
        )
        self.matching = SubscriptionMatching(pipeline)
        self.reload_needed = True
        self.agent: AgentT[Any] | None = None  # set by register

    def on_rebalance(
        self, sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        self.reload_needed = True

    def _reload_activity(self) -> None:
        """Rebuild the stages' activity indexes from their tables (after a start or a
        rebalance)."""
        self.alert_stage.reload(self.tables.alerts.items())
        self.matching.stage.reload(self.tables.matches.items())
        self.reload_needed = False

    async def evaluate_alerts(self, stream: StreamT[StoryEvent]) -> None:
        """One alert per story per rule; the CloudEvent id (story + rule) makes it
        idempotent. A ``merged`` event folds the absorbed story's rule state into the
        survivor's: what fired for either part does not fire again for the merged story. Then
        the batch is matched against the subscriptions, with the rule's verdict on each
        event.

        Story events come in small batches; each story's rule state is written to its table
        once per batch (after the batch's alerts are sent, so a crash re-sends, never drops,
        one). Stories quiet for longer than the story window leave the table.
        """
        worker = self.worker
        async for events in stream.take(worker.stage_batch_size, worker.stage_max_wait_s):
            if self.reload_needed:
                self._reload_activity()
            steps = [StoryStep.of_event(event) for event in events]
            batch = self.alert_stage.run(self.tables.alerts, steps)
            await self._send_alerts(events, batch)
            # Only the matching waits for the subscriptions (read to the topic's end once,
            # at start): the batch's emerging alerts are already out.
            await self.matching.prepare()
            await self.matching.match_batch(steps, batch.emerging)
            self.alert_stage.commit(batch, self.tables.alerts)

    async def _send_alerts(self, events: list[StoryEvent], batch: AlertBatch) -> None:
        for alert in batch.alerts:
            await self.topics.alerts.send(
                key=alert.story_id,
                value=alert.event,
                # the causing article's Kafka time (see agents/cluster)
                timestamp=events[alert.step].produced_at,
                headers=CLOUDEVENT_HEADERS,
            )
            self.metrics.alerts_emitted.labels(self.emerging_rule.name).inc()


def register(pipeline: Pipeline) -> AlertAgent:
    """Declare the agent on ``stories`` under its name from before the composition root."""
    agent = AlertAgent(pipeline)
    pipeline.app.on_rebalance_complete.connect(agent.on_rebalance)
    agent.agent = pipeline.app.agent(pipeline.topics.stories, name="agents.alerts.evaluate_alerts")(
        agent.evaluate_alerts
    )
    return agent
