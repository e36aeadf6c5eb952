"""Agent: match story events against the subscriptions; emit their alerts and outbox entries.

Runs on ``stories``, apart from the ordered cluster stage: a thousand subscriptions never
slow clustering. Keywords match through an index of phrases, semantic queries as one matrix
product per batch of story events; each event evaluates only the rules those indexes name
(plus the filter-only ones), not every subscription.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from faust import StreamT
from mode.signals import BaseSignalT

from streams.app import (
    app,
    embedder,
    metrics,
    model_thread,
    settings,
    subscription_store,
    tables,
    topics,
)
from streams.engine.alerts import EmergingRule, EmergingState, iso_time
from streams.engine.expiry import InactiveKeys
from streams.engine.vectors import decode_vector
from streams.record_headers import CLOUDEVENT_HEADERS
from streams.records import StoryEvent
from streams.stages.merges import MergedStates, absorb_emerging
from streams.subscriptions.alerts import match_alert, outbox_entry
from streams.subscriptions.matching import (
    Matcher,
    SemanticIndex,
    StoryMatchState,
    StoryUpdate,
)
from streams.subscriptions.model import Subscription

__all__ = ["match_subscriptions", "subscription_set"]

logger = logging.getLogger(__name__)

_emerging = EmergingRule.from_settings(settings)
# Per-story matching state is dropped once the story is quiet past the story window.
_quiet = InactiveKeys(settings.story_window_hours * 3600.0)
_reload_needed = [True]
# Why 20: enough outlets to show a story's reach in an alert; the count is in source_count.
_SUMMARY_SOURCES = 20

_StoryStates = tuple[StoryMatchState, EmergingState]  # the matcher's and the burst rule's


@app.on_rebalance_complete.connect
def _on_rebalance(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
    _reload_needed[0] = True


@dataclass
class SubscriptionSet:
    """The enabled subscriptions as a Matcher and a semantic index, rebuilt when the global
    table changes; query embeddings are kept by text, so an edit re-embeds only new text."""

    version: int = -1  # the store's version this was built from
    matcher: Matcher = field(default_factory=lambda: Matcher([]))
    semantic: SemanticIndex = field(default_factory=lambda: SemanticIndex([], np.zeros((0, 0))))
    by_id: dict[str, Subscription] = field(default_factory=dict)
    query_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    async def refresh(self) -> None:
        """Rebuild when a subscription was added, changed or removed (the store's version
        says so; the records are parsed only then, not on every batch)."""
        await subscription_store.ready()  # never match against a partly read topic
        if subscription_store.version == self.version:
            return
        version = subscription_store.version
        records = subscription_store.values()
        subs = []
        for record in records:
            try:
                subs.append(Subscription.from_record(record))
            except Exception:  # a record the API did not write: skip it, loudly
                logger.exception("ignoring an invalid subscription record")
        enabled = [s for s in subs if s.enabled]
        queries = sorted({s.filter.query for s in enabled if s.filter.query is not None})
        missing = [q for q in queries if q not in self.query_vectors]
        if missing:
            vectors = await model_thread.run(embedder.encode, missing)
            self.query_vectors.update(zip(missing, np.asarray(vectors), strict=True))
        self.query_vectors = {q: self.query_vectors[q] for q in queries}
        self.semantic = SemanticIndex.build(
            enabled, lambda texts: np.stack([self.query_vectors[t] for t in texts])
        )
        self.matcher = Matcher(enabled)
        self.by_id = {s.id: s for s in enabled}
        self.version = version


subscription_set = SubscriptionSet()


def _reload_activity() -> None:
    _quiet.reload(tables.matches.items())
    _reload_needed[0] = False


def _semantic_scores(events: list[StoryEvent]) -> list[dict[str, float]]:
    """One matrix product for the batch: each event's story centroid against every query;
    per event, the queries that reached their threshold (the matcher's semantic candidates)."""
    index = subscription_set.semantic
    if not index.ids:
        return [{} for _ in events]
    rows = [i for i, e in enumerate(events) if e.centroid]
    scores: list[dict[str, float]] = [{} for _ in events]
    if rows:
        matrix = np.stack([decode_vector(events[i].centroid or "") for i in rows])
        for i, row in zip(rows, index.hits(matrix), strict=True):
            scores[i] = row
    return scores


def _summary(
    event: StoryEvent, story_id: str, state: StoryMatchState, urls: list[str]
) -> dict[str, Any]:
    return {
        "story_id": story_id,
        "headline": event.headline,
        "size": event.story_size,
        "source_count": event.source_count,
        "sources": list(state.sources.values())[:_SUMMARY_SOURCES],
        "keywords": list(event.keywords or []),
        "sample_urls": list(urls),
        "first_seen": iso_time(event.first_seen),
        "last_seen": iso_time(event.last_seen),
    }


@app.agent(topics.stories)
async def match_subscriptions(stream: StreamT[StoryEvent]) -> None:
    """Each story event is matched against every enabled subscription; each (subscription,
    story, trigger) fires once (its dedup key is the alert's CloudEvent id and, hashed, the
    webhook-id). Alerts and outbox entries go out before the batch's state is written, so a
    crash re-sends (same ids), never drops, one. A ``merged`` event folds the absorbed
    story's state into the survivor's: nothing fired for either part fires again."""
    async for stories in stream.take(settings.stage_batch_size, settings.stage_max_wait_s):
        await subscription_set.refresh()
        if _reload_needed[0]:
            _reload_activity()
        await _match_batch(stories)


def _match_state(record: dict[str, Any] | None) -> _StoryStates:
    if not record:
        return StoryMatchState(), EmergingState()
    return StoryMatchState.from_record(record["match"]), EmergingState.from_record(record)


def _absorb(into: _StoryStates, other: _StoryStates) -> None:
    into[0].absorb(other[0])
    absorb_emerging(into[1], other[1])


async def _match_batch(stories: list[StoryEvent]) -> None:
    scores = _semantic_scores(stories)
    states = MergedStates(tables.matches, _match_state)
    for event, semantic in zip(stories, scores, strict=True):
        when = max(event.last_seen, event.event_time)
        if event.is_merge and event.absorbed_id:
            # The survivor inherits what each subscription fired for the absorbed story:
            # the same (subscription, trigger) does not fire again for the merged story.
            if states.merge(event.story_id, event.absorbed_id, _absorb):
                _quiet.touch(event.absorbed_id, when)
            story_id, (state, _) = states.get(event.story_id)
            state.size = max(state.size, event.story_size)
            state.source_count = max(state.source_count, event.source_count)
            _quiet.touch(story_id, when)
            continue
        story_id, (state, burst) = states.get(event.story_id)
        _quiet.touch(story_id, when)
        assignment = replace(event.to_assignment(), story_id=story_id)
        _emerging.observe(burst, assignment)
        update = StoryUpdate.from_assignment(
            assignment, text=event.text or "", emerging=burst.fired
        )
        for match in subscription_set.matcher.observe(update, state, semantic):
            subscription = subscription_set.by_id[match.subscription_id]
            alert = match_alert(
                match,
                subscription,
                _summary(event, story_id, state, burst.urls),
                source=f"/storywatch/{settings.app_id}/subscriptions",
                time=event.event_time,
            )
            await topics.alerts.send(key=subscription.id, value=alert, headers=CLOUDEVENT_HEADERS)
            if subscription.webhook is not None:
                entry = outbox_entry(alert, time.time())
                await topics.deliveries.send(key=entry["webhook_id"], value=entry)
            metrics.subscription_matches.labels(match.trigger).inc()
    states.write_back(tables.matches, _quiet, _match_record)


def _match_record(states: _StoryStates) -> dict[str, Any]:
    match, burst = states
    return {**burst.to_record(), "match": match.to_record()}
