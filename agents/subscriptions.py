"""Subscription matching in the worker: the subscription set kept current from the store,
and the match stage (streams/stages/matching.py) driven over a batch of story events.

The stories agent (agents/alerts.py) calls :func:`match_batch` after the alert stage, with
its verdict on each event: the emerging rule runs once. Keywords match through an index of
phrases, semantic queries as one matrix product per batch of story events; each event
evaluates only the rules those indexes name (plus the filter-only ones), not every
subscription.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streams.contracts.cloudevents import CLOUDEVENT_HEADERS
from streams.contracts.outbox import outbox_entry
from streams.engine.embedding import Embedder
from streams.engine.expiry import InactiveKeys
from streams.model_thread import ModelThread
from streams.pipeline import Pipeline
from streams.stages.alerts import Emerging
from streams.stages.cluster import StoryStep
from streams.stages.matching import MatchStage, Subscriptions
from streams.subscriptions.matching import Matcher, SemanticIndex
from streams.subscriptions.store import SubscriptionStore

__all__ = ["SubscriptionMatching", "SubscriptionSet"]

logger = logging.getLogger(__name__)


@dataclass
class SubscriptionSet(Subscriptions):
    """The enabled subscriptions as a Matcher and a semantic index, rebuilt when the store
    changes; query embeddings are kept by text, so an edit re-embeds only new text."""

    # keyword-only: after the parent's fields, which have defaults
    store: SubscriptionStore = field(kw_only=True)
    embedder: Embedder = field(kw_only=True)
    model_thread: ModelThread = field(kw_only=True)
    version: int = -1  # the store's version this was built from
    query_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    async def refresh(self) -> None:
        """Rebuild when a subscription was added, changed or removed (the store's version
        says so; the records are parsed only then, not on every batch)."""
        store = self.store
        await store.ready()  # never match against a partly read topic
        if store.version == self.version:
            return
        version = store.version
        enabled = store.enabled()
        queries = sorted({s.filter.query for s in enabled if s.filter.query is not None})
        missing = [q for q in queries if q not in self.query_vectors]
        if missing:
            vectors = await self.model_thread.run(self.embedder.encode, missing)
            self.query_vectors.update(zip(missing, np.asarray(vectors), strict=True))
        self.query_vectors = {q: self.query_vectors[q] for q in queries}
        self.semantic = SemanticIndex.build(
            enabled, lambda texts: np.stack([self.query_vectors[t] for t in texts])
        )
        self.matcher = Matcher(enabled)
        self.by_id = {s.id: s for s in enabled}
        self.version = version


class SubscriptionMatching:
    """The match stage over the stories agent's batches, with the subscriptions it matches."""

    def __init__(self, pipeline: Pipeline) -> None:
        settings = pipeline.settings
        self.tables = pipeline.tables
        self.topics = pipeline.topics
        self.metrics = pipeline.metrics
        # Per-story matching state is dropped once the story is quiet past the story window.
        self.stage = MatchStage(
            InactiveKeys(settings.engine.story_window_hours * 3600.0),
            f"/storywatch/{settings.worker.app_id}/subscriptions",
        )
        self.subscriptions = SubscriptionSet(
            store=pipeline.subscription_store,
            embedder=pipeline.embedder,
            model_thread=pipeline.model_thread,
        )

    async def prepare(self) -> None:
        """Before a batch: the current subscriptions."""
        await self.subscriptions.refresh()

    async def match_batch(
        self, steps: Sequence[StoryStep], emerging: Sequence[Emerging | None]
    ) -> None:
        """Each story event is matched against every enabled subscription; each
        (subscription, story, trigger) fires once. Alerts and outbox entries go out before the
        batch's state is written, so a crash re-sends (same ids), never drops, one. A
        ``merged`` event folds the absorbed story's state into the survivor's: nothing fired
        for either part fires again. ``emerging``: the alert stage's verdict on each event."""
        batch = self.stage.run(self.tables.matches, steps, emerging, self.subscriptions)
        for alert in batch.alerts:
            subscription = alert.subscription
            await self.topics.alerts.send(
                key=subscription.id, value=alert.event, headers=CLOUDEVENT_HEADERS
            )
            if subscription.webhook is not None:
                entry = outbox_entry(alert.event, time.time())
                await self.topics.deliveries.send(key=entry["webhook_id"], value=entry)
            self.metrics.subscription_matches.labels(alert.trigger).inc()
        self.stage.commit(batch, self.tables.matches)
