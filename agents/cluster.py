"""Agent: assign each embedded article to a story (one ordered stream, one partition)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from faust import StreamT
from faust.types import EventT
from mode.signals import BaseSignalT

from agents.glue import StageAgent
from streams.contracts.records import EmbeddedArticle, StoryEvent
from streams.engine.clustering import ClusterParams, StateChanges, StoryEngine
from streams.engine.vectors import decode_vector, encode_vector
from streams.pipeline import Pipeline
from streams.stages.cluster import ClusterInput, cluster

__all__ = ["ClusterAgent", "register"]

logger = logging.getLogger(__name__)

_JOURNAL_KEY = "last"
# Why 64 KiB less than the producer's largest request: room for the record's envelope.
_JOURNAL_ENVELOPE_BYTES = 64 * 1024


class ClusterAgent(StageAgent):
    """The cluster stage on ``articles-embedded``: the engine (a plain object, no I/O: the
    in-memory index derived from the tables, rebuilt on recovery) and its table mirror."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline)
        settings = pipeline.settings
        self.dead_letters = pipeline.dead_letters
        self.engine = StoryEngine(ClusterParams.from_settings(settings.engine))
        self.journal_limit_bytes = settings.topics.dlq_max_message_bytes - _JOURNAL_ENVELOPE_BYTES
        self.event_text_chars = settings.embed.embed_max_chars  # what a story event carries
        self.restore_needed = True

    def on_rebalance(
        self, sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        """Partitions may have moved: rebuild the index from the tables before the next
        article."""
        self.restore_needed = True

    def restore_engine(self) -> None:
        """Load the engine's state from the changelog-backed tables, after completing the last
        batch's writes from the journal (a crash may have torn them)."""
        tables = self.tables
        last = tables.journal.get(_JOURNAL_KEY)
        if last is not None:
            self._write(last)
        seen = {key: rec for key, rec in tables.seen.items() if rec is not None}
        self.engine.restore(
            [r for r in tables.stories.values() if r is not None],
            [r for r in tables.groups.values() if r is not None],
            seen,
        )
        self.metrics.active_stories.set(self.engine.active_stories)
        self.restore_needed = False

    async def apply_changes(self, changes: StateChanges) -> None:
        """Mirror the engine's state changes into the tables (and so their changelogs).

        The three tables' changelog records are not written atomically: a kill between them
        would leave a story counting a batch whose seen records were lost, and the replay
        would count those articles again (the kill test saw a story of 164 served as 166, and
        a later decision differ). So the batch's records go first as ONE journal record
        (atomic), then into the tables; each step waits for the broker, so only the last
        batch can be torn, and a restore completes it from the journal before it reads the
        tables.
        """
        records = changes.records()
        if len(json.dumps(records)) < self.journal_limit_bytes:
            self.tables.journal[_JOURNAL_KEY] = records
        else:  # pragma: no cover - a batch of 64 articles is ~1 MB at most
            logger.warning("cluster batch too large for the journal; written without it")
            self.tables.journal.pop(_JOURNAL_KEY, None)
        await self._flush()
        self._write(records)
        await self._flush()

    async def _flush(self) -> None:
        """Wait until the broker has every record sent so far (nothing to wait for when the
        producer never started: Faust's agent test context writes tables in memory only)."""
        if self.app.producer.started:
            await self.app.producer.flush()

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        for table, name in (
            (self.tables.stories, "stories"),
            (self.tables.groups, "groups"),
            (self.tables.seen, "seen"),
        ):
            for key, record in records[name].items():
                if record is None:
                    table.pop(key, None)
                else:
                    table[key] = record

    async def _dead_letter(self, event: EventT, exc: Exception) -> None:
        item = event.value
        logger.exception("clustering article %s failed", getattr(item, "id", "?"))
        await self.dead_letters.send(
            reason="clustering_failed",
            error=f"{type(exc).__name__}: {exc}; report it with this record",
            stage="cluster",
            message=event.message,
            value=item.dumps() if isinstance(item, EmbeddedArticle) else None,
        )

    async def cluster_articles(self, stream: StreamT[EmbeddedArticle]) -> None:
        """One story event per new article, and a ``merged`` event after the article that
        merged two stories; exact re-sends of an id are counted and dropped.

        Articles come in small batches: each is decided and its story event sent in order,
        and the batch's table changes are written once at the end (latest record per key), so
        the events of a batch are out before its state: a crash replays the batch from the
        last committed offset and re-sends its events (at least once), never loses one.
        """
        worker, metrics, topics = self.worker, self.metrics, self.topics
        # take_events (not take): a dead letter names the record's topic/partition/offset.
        async for events in stream.take_events(  # type: ignore[attr-defined]
            worker.stage_batch_size, worker.stage_max_wait_s
        ):
            if self.restore_needed:
                self.restore_engine()
            pending = StateChanges()
            for event in events:
                item: EmbeddedArticle = event.value
                started = time.perf_counter()
                try:
                    out = cluster(
                        self.engine,
                        ClusterInput(
                            item.to_article(),
                            decode_vector(item.vector),
                            item.record_ts,
                            item.text_evidence(),
                        ),
                    )
                except Exception as exc:  # noqa: BLE001 - reported in the dead letter
                    await self._dead_letter(event, exc)
                    continue
                metrics.clustering_duration.observe(time.perf_counter() - started)
                pending.merge(out.changes)
                assignment, centroid = out.assignment, out.centroid
                if assignment is None:
                    metrics.articles_duplicate.labels("id").inc()
                    continue
                if assignment.decision == "duplicate":
                    metrics.articles_duplicate.labels("content").inc()
                else:
                    metrics.clustering_decisions.labels(assignment.decision).inc()
                event_record = StoryEvent.build(
                    assignment,
                    item.produced_at,
                    text=item.text[: self.event_text_chars],
                    centroid=None if centroid is None else encode_vector(centroid),
                    truncated_from=item.truncated_from,
                    claimed_time=item.claimed_time,
                )
                # Stamped with the article's Kafka time: `storywatch history` and `replay
                # --compare` find a story event by the time of the article that caused it.
                await topics.stories.send(
                    key=assignment.story_id, value=event_record, timestamp=item.produced_at
                )
                # After the article's own event: the merge it completed, one event each (a
                # replayed batch re-sends the same ones: every reader folds a merge once).
                for merge in out.merges:
                    await topics.stories.send(
                        key=merge.story_id,
                        value=StoryEvent.merged(merge, event_record),
                        timestamp=item.produced_at,
                    )
                    metrics.stories_merged.inc()
                metrics.end_to_end_latency.observe(max(0.0, time.time() - item.produced_at))
            await self.apply_changes(pending)
            metrics.active_stories.set(self.engine.active_stories)


def register(pipeline: Pipeline) -> ClusterAgent:
    """Declare the cluster agent on ``articles-embedded`` (one ordered stream, one
    partition), under its name from before the composition root."""
    agent = ClusterAgent(pipeline)
    pipeline.app.on_rebalance_complete.connect(agent.on_rebalance)
    agent.agent = pipeline.app.agent(
        pipeline.topics.embedded, name="agents.cluster.cluster_articles"
    )(agent.cluster_articles)
    return agent
