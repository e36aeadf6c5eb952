"""Agent: drain the webhook outbox. Faust glue only: read a batch, hand each entry to the
delivery service (``streams.subscriptions.delivery``) as its own task, ack the entry once
its delivery is final (delivered, parked or cancelled)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust import StreamT
from faust.types import EventT

from agents.glue import StageAgent
from streams.pipeline import Pipeline
from streams.subscriptions.delivery import PER_RECEIVER, DeliveryService, redact_logs
from streams.subscriptions.sender import WebhookSender
from streams.subscriptions.ssrf import WebhookGuard

__all__ = ["DeliveryAgent", "register"]


async def _one(service: DeliveryService, stream: StreamT[Any], event: EventT) -> None:
    try:
        final = await service.settle(event.key, event.value, event.message)
    finally:
        service.release()
    if final:
        await stream.ack(event)


class DeliveryAgent(StageAgent):
    """The webhook outbox's consumer; the service is built when the agent starts (it opens
    the HTTP session)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        self.webhooks = pipeline.settings.webhooks
        self.topic_settings = pipeline.settings.topics  # for the dead letters' sizes
        self.subscription_store = pipeline.subscription_store

    async def _park(self, key: Any, value: dict[str, Any]) -> None:
        """Send one dead letter to alerts-dlq; returns once the broker has it."""
        parked = await self.topics.alerts_dlq.send(key=key, value=value)
        await parked

    async def deliver_webhooks(self, stream: StreamT[Any]) -> None:
        """One task per outbox entry; the entry is acked when its delivery is final."""
        webhooks, worker = self.webhooks, self.worker
        redact_logs()
        guard = WebhookGuard(webhooks.allowed_hosts)
        async with WebhookSender(
            guard, timeout_s=webhooks.webhook_timeout_s, limit_per_host=PER_RECEIVER
        ) as sender:
            service = DeliveryService(
                sender,
                webhooks=webhooks,
                topics=self.topic_settings,
                metrics=self.metrics,
                receipts=self.tables.receipts,
                delivery_log=self.tables.delivery_log,
                subscriptions=self.subscription_store,
                park=self._park,
            )
            tasks: set[asyncio.Task[None]] = set()
            async for events in stream.noack_take(  # type: ignore[attr-defined]
                worker.stage_batch_size, worker.stage_max_wait_s
            ):
                for event in events:
                    await service.admit()
                    task = asyncio.ensure_future(_one(service, stream, event))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)


def register(pipeline: Pipeline) -> DeliveryAgent:
    """Declare the agent on ``deliveries`` under its name from before the composition root."""
    agent = DeliveryAgent(pipeline)
    agent.agent = pipeline.app.agent(
        pipeline.topics.deliveries, name="agents.deliveries.deliver_webhooks"
    )(agent.deliver_webhooks)
    return agent
