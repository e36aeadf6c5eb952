"""The backtest itself, in plain Python: the live stages (streams/stages: cluster, emerging
alerts, subscription matching) over a sequence of articles, in batches as the worker takes
them, with their state in memory and their outputs in files (never in the live tables or
topics)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from config.settings import Settings
from streams.engine.clustering import Assignment, ClusterParams, StateChanges, StoryEngine
from streams.engine.emerging import EmergingRule
from streams.engine.expiry import InactiveKeys
from streams.replay.sources import Item, Skipped
from streams.replay.subscriptions import SubscriptionReplay
from streams.stages.alerts import AlertStage
from streams.stages.cluster import ClusterInput, StoryStep, cluster
from streams.stages.matching import MatchStage

__all__ = ["Backtest", "TopStory"]

_ASSIGNMENT_FIELDS = tuple(Assignment.__dataclass_fields__)
# Why 10: the top stories a person reads in a summary at a glance.
_TOP_STORIES = 10


@dataclass
class TopStory:
    story_id: str
    headline: str
    size: int
    source_count: int
    first_seen: float
    last_seen: float


@dataclass
class Backtest:
    """Feed it items in order with :meth:`observe`; :meth:`close` writes the summary."""

    settings: Settings
    rules: list[EmergingRule]
    out_dir: Path | None = None
    keep_state: bool = False  # collect the engine's state changes (for `storywatch rebuild`)
    subscriptions: SubscriptionReplay | None = None  # the current subscriptions, matched
    engine: StoryEngine = field(init=False)
    state: StateChanges = field(default_factory=StateChanges)
    assignments: dict[str, str] = field(default_factory=dict)  # article id -> story id
    alerted: dict[str, set[str]] = field(default_factory=dict)  # rule -> story ids
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    stories: dict[str, TopStory] = field(default_factory=dict)
    decisions: Counter[str] = field(default_factory=Counter)
    read: int = 0
    resent: int = 0  # exact re-sends of an id: no story event, as live
    skipped: list[Skipped] = field(default_factory=list)
    first_ms: int | None = None
    last_ms: int | None = None
    started: float = field(default_factory=time.perf_counter)
    merges: int = 0  # stories merged after the fact (STORYWATCH_MERGE_BRIDGES > 0)
    # The stages after clustering, as the worker runs them: one alert stage per rule (the
    # configured rule's verdict feeds the match stage), each with its table in memory.
    _alerting: list[tuple[AlertStage, dict[str, Any]]] = field(default_factory=list)
    _matching: tuple[MatchStage, dict[str, Any]] | None = None
    _verdict: tuple[AlertStage, dict[str, Any]] | None = None  # the live rule, not in rules
    _pending: list[StoryStep] = field(default_factory=list)  # the batch being gathered
    _files: dict[str, IO[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = StoryEngine(ClusterParams.from_settings(self.settings.engine))
        window_s = self.settings.story_window_hours * 3600.0
        source = f"/storywatch/{self.settings.app_id}/replay"
        for rule in self.rules:
            self._alerting.append((AlertStage(rule, InactiveKeys(window_s), source), {}))
        if self.subscriptions is not None:
            self._matching = (MatchStage(InactiveKeys(window_s), source), {})
            live = EmergingRule.from_settings(self.settings.alerts)
            if live not in self.rules:  # the match stage reads the configured rule's verdict
                self._verdict = (AlertStage(live, InactiveKeys(window_s), source), {})
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in ("stories", "alerts"):
                self._files[name] = (self.out_dir / f"{name}.jsonl").open("w", encoding="utf-8")

    def observe(self, item: Item | Skipped) -> None:
        self.read += 1
        if isinstance(item, Skipped):
            self.skipped.append(item)
            return
        self.first_ms = item.kafka_ms if self.first_ms is None else self.first_ms
        self.last_ms = item.kafka_ms
        try:
            out = cluster(
                self.engine,
                ClusterInput(item.article, item.vector, item.stream_time, item.evidence),
            )
        except Exception as exc:  # noqa: BLE001 - live, this is a dead letter
            self.skipped.append(Skipped(-1, f"clustering failed: {type(exc).__name__}: {exc}"))
            return
        if self.keep_state:
            self.state.merge(out.changes)
        assignment = out.assignment
        if assignment is None:
            self.resent += 1
            return
        self.decisions[assignment.decision] += 1
        self.assignments[assignment.article_id] = assignment.story_id
        self.stories[assignment.story_id] = TopStory(
            assignment.story_id,
            assignment.headline,
            assignment.story_size,
            assignment.source_count,
            assignment.first_seen,
            assignment.last_seen,
        )
        if self._files:  # no files (the benchmark, rebuild): no serialising
            fields = {name: getattr(assignment, name) for name in _ASSIGNMENT_FIELDS}
            self._write("stories", {**fields, "kafka_time_ms": item.kafka_ms})
        for merge in out.merges:  # as live: the merge is an event after the article's
            self.merges += 1
            self.stories.pop(merge.absorbed_id, None)
            self._write("stories", {**merge.record(), "kafka_time_ms": item.kafka_ms})
        if self._alerting or self._matching is not None:
            self._pending += out.steps(item.article.text[: self.settings.embed_max_chars])
            if len(self._pending) >= self.settings.stage_batch_size:
                self.flush()

    def flush(self) -> None:
        """Run the stages after clustering over the steps gathered (as the worker does a
        batch of story events); their alerts go to alerts.jsonl in step order."""
        steps, self._pending = self._pending, []
        if not steps:
            return
        fired: list[tuple[int, int, dict[str, Any]]] = []  # (step, kind, CloudEvent)
        live = EmergingRule.from_settings(self.settings.alerts)
        verdicts = None
        for stage, table in self._alerting:
            batch = stage.run(table, steps)
            stage.commit(batch, table)
            for alert in batch.alerts:
                self.alerts_by_rule[stage.rule.name] += 1
                self.alerted.setdefault(stage.rule.name, set()).add(alert.story_id)
                fired.append((alert.step, 0, alert.event))
            if stage.rule == live:
                verdicts = batch.emerging
        if self._verdict is not None:
            stage, table = self._verdict
            batch = stage.run(table, steps)
            stage.commit(batch, table)
            verdicts = batch.emerging
        if self._matching is not None and self.subscriptions is not None:
            assert verdicts is not None
            matcher, table = self._matching
            matched = matcher.run(table, steps, verdicts, self.subscriptions.current)
            matcher.commit(matched, table)
            for sub_alert in matched.alerts:
                self.subscriptions.fired[sub_alert.subscription.id] += 1
                fired.append((sub_alert.step, 1, sub_alert.event))
        for _, _, event in sorted(fired, key=lambda x: (x[0], x[1])):
            self._write("alerts", event)

    def _write(self, name: str, value: dict[str, Any]) -> None:
        handle = self._files.get(name)
        if handle is not None:
            handle.write(json.dumps(value, separators=(",", ":")) + "\n")

    @property
    def processed(self) -> int:
        return sum(self.decisions.values())

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def top_stories(self) -> list[TopStory]:
        ranked = sorted(self.stories.values(), key=lambda s: (-s.size, s.first_seen, s.story_id))
        return ranked[:_TOP_STORIES]

    def summary(self) -> dict[str, Any]:
        self.flush()
        return {
            "articles_read": self.read,
            "articles_processed": self.processed,
            "exact_resends": self.resent,
            "skipped": len(self.skipped),
            "skipped_examples": [asdict(s) for s in self.skipped[:5]],
            "decisions": dict(self.decisions),
            "stories": len(self.stories),
            "active_stories": self.engine.active_stories,
            "stories_new": self.decisions.get("new", 0),
            "stories_merged": self.merges,
            "alerts_by_rule": {r.name: self.alerts_by_rule.get(r.name, 0) for r in self.rules},
            "subscriptions": None
            if self.subscriptions is None
            else {
                "matched_against": len(self.subscriptions.subscriptions),
                "alerts": sum(self.subscriptions.fired.values()),
                "alerts_by_subscription": dict(self.subscriptions.fired),
            },
            "rules": [
                {
                    "name": r.name,
                    "min_articles": r.min_articles,
                    "min_sources": r.min_sources,
                    "window_hours": r.window_s / 3600.0,
                }
                for r in self.rules
            ],
            "top_stories": [asdict(s) for s in self.top_stories()],
            "first_record_ms": self.first_ms,
            "last_record_ms": self.last_ms,
            "seconds": round(self.seconds, 3),
            "articles_per_second": round(self.read / max(self.seconds, 1e-9), 1),
        }

    def close(self, summary: dict[str, Any]) -> None:
        self.flush()
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if self.out_dir is not None:
            (self.out_dir / "summary.json").write_text(
                json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
