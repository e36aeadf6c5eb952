"""``storywatch replay``: choose the history to read, run the backtest over it, compare.

An isolated run: it reads with a group-free consumer (no group id, nothing committed) and
writes only files; the live workers' tables, topics and groups never see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.contracts.records import MERGED
from streams.engine.emerging import EMERGING, EmergingRule
from streams.exceptions import ReplayError
from streams.kafka.window import Plan, TopicReader
from streams.replay.backtest import Backtest
from streams.replay.compare import compare_runs
from streams.replay.history import read_history
from streams.replay.progress import Progress
from streams.replay.sources import Item, ModelMismatch, Skipped, embedded_items, raw_items
from streams.replay.subscriptions import SubscriptionReplay
from streams.stages.embed import Limits
from streams.stream_time import StreamClock
from streams.subscriptions.store import SubscriptionStore
from streams.time_ranges import TimeRange, format_ms

__all__ = ["ReplayRequest", "run_replay"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReplayRequest:
    settings: Settings  # the run's settings (the live ones with --set applied)
    live: Settings  # the live settings: which model wrote articles-embedded
    window: TimeRange
    rules: list[EmergingRule]
    out_dir: Path | None
    compare: bool = False
    tty: bool | None = None  # None: a bar when stderr is a terminal
    keep_state: bool = False
    overrides: dict[str, str] | None = None  # the --set values, for the summary
    subscriptions: bool = True  # match the current subscriptions too


def _empty(plan: Plan) -> ReplayError:
    return ReplayError(
        f"no articles on {plan.topic} in {plan.window.describe()}; {plan.kept()}: "
        "choose a range inside it"
    )


def _clipped(plan: Plan, settings: Settings) -> str:
    assert plan.window.start_ms is not None and plan.earliest_ms is not None
    return (
        f"--from {format_ms(plan.window.start_ms)} is older than the oldest record still kept "
        f"on {plan.topic} ({format_ms(plan.earliest_ms)}; retention "
        f"STORYWATCH_ARTICLES_RETENTION_DAYS={settings.articles_retention_days:g}): "
        f"starting at {format_ms(plan.earliest_ms)}"
    )


async def _choose(reader: TopicReader, request: ReplayRequest, say: Say) -> tuple[Plan, str]:
    """The topic to read and why: ``articles-embedded`` unless it lacks the range's start
    (retention) where ``articles`` has more, or the run changes the model."""
    run = request.settings
    if run.model != request.live.model:
        say(
            f"the run's model ({run.model}) is not the one that embedded "
            f"{run.topic_embedded} ({request.live.model}): reading {run.topic_articles} and "
            "embedding again (model speed, not clustering speed)"
        )
        return await reader.plan(run.topic_articles, request.window), "articles:model"
    embedded = await reader.plan(run.topic_embedded, request.window)
    if embedded.clipped and await reader.exists(run.topic_articles):
        raw = await reader.plan(run.topic_articles, request.window)
        if raw.earliest_ms is not None and raw.earliest_ms < (embedded.earliest_ms or 0):
            assert embedded.earliest_ms is not None
            say(
                f"{run.topic_embedded} keeps records only from {format_ms(embedded.earliest_ms)}"
                f", {run.topic_articles} from {format_ms(raw.earliest_ms)}: reading "
                f"{run.topic_articles} and embedding again (model speed)"
            )
            return raw, "articles:retention"
    return embedded, "embedded"


def _items(
    reader: TopicReader, plan: Plan, kind: str, settings: Settings
) -> AsyncIterator[Item | Skipped]:
    records = reader.records(plan)
    if kind == "embedded":
        return embedded_items(records, settings.model)
    from streams.engine.embedding import Embedder

    embedder = Embedder.from_settings(settings.embed)
    embedder.load()
    return raw_items(
        records,
        embedder.encode,
        limits=Limits.from_settings(settings.embed),
        batch_size=settings.embed_batch_size,
        clock=StreamClock.from_settings(settings.embed, settings.keys),
    )


async def _subscriptions(request: ReplayRequest, say: Say) -> SubscriptionReplay | None:
    if not request.subscriptions:
        return None
    run = request.settings
    found = (await SubscriptionStore.read_once(run.kafka, run.topics, run.keys)).enabled()
    if not found:
        return None
    encode = None
    queries = {s.filter.query for s in found if s.filter.query is not None}
    if queries:
        from streams.engine.embedding import Embedder

        say(f"loading the model for {len(queries)} semantic subscription queries")
        embedder = Embedder.from_settings(run.embed)
        embedder.load()
        encode = embedder.encode
    say(f"matching {len(found)} subscriptions of {run.topic_subscriptions} (nothing is delivered)")
    return SubscriptionReplay.build(found, encode)


async def _read(
    reader: TopicReader,
    request: ReplayRequest,
    plan: Plan,
    kind: str,
    *,
    matching: SubscriptionReplay | None,
    say: Say,
) -> Backtest:
    """One backtest over ``plan``'s records (a :class:`ModelMismatch` ends it, its files
    closed, for the caller to read ``articles`` instead)."""
    test = Backtest(request.settings, request.rules, request.out_dir, request.keep_state, matching)
    progress = Progress(plan.total, "replay", tty=request.tty, echo=say)
    try:
        async for item in _items(reader, plan, kind, request.settings):
            test.observe(item)
            progress.update()
    except ModelMismatch:
        test.close({})
        raise
    finally:
        progress.close()
    return test


async def _backtest(request: ReplayRequest, say: Say) -> tuple[Backtest, Plan, str]:
    async with TopicReader(request.settings.kafka) as reader:
        plan, kind = await _choose(reader, request, say)
        if plan.clipped:
            say(_clipped(plan, request.settings))
        if plan.total == 0:
            raise _empty(plan)
        say(f"reading {plan.total} records of {plan.topic} in {request.window.describe()}")
        matching = await _subscriptions(request, say)
        try:
            test = await _read(reader, request, plan, kind, matching=matching, say=say)
        except ModelMismatch as mismatch:
            say(
                f"{plan.topic} was embedded by {mismatch.found}, the run uses "
                f"{request.settings.model}: reading {request.settings.topic_articles} and "
                "embedding again (model speed)"
            )
            plan = await reader.plan(request.settings.topic_articles, request.window)
            if plan.total == 0:
                raise _empty(plan) from None
            kind = "articles:model"
            test = await _read(reader, request, plan, kind, matching=matching, say=say)
    if test.read == 0:
        raise _empty(plan)
    return test, plan, kind


async def _compare(request: ReplayRequest, test: Backtest) -> dict[str, Any]:
    live = request.live
    stories = await read_history(live.kafka, live.topic_stories, request.window)
    alerts = await read_history(
        live.kafka, live.topic_alerts, request.window, lambda a: a.get("type") == EMERGING
    )
    assignment = {
        str(r.value["article_id"]): str(r.value["story_id"])
        for r in stories
        if "article_id" in r.value and "story_id" in r.value and r.value.get("decision") != MERGED
    }
    headlines = {str(r.value.get("story_id")): str(r.value.get("headline", "")) for r in stories}
    headlines.update({s.story_id: s.headline for s in test.stories.values()})
    live_alerted = {str(a.value.get("subject")) for a in alerts}
    replay_alerted = set().union(*test.alerted.values()) if test.alerted else set()
    result = compare_runs(test.assignments, assignment, replay_alerted, live_alerted, headlines)
    result["live_story_events"] = len(stories)
    result["live_alerts"] = len(alerts)
    return result


def run_replay(request: ReplayRequest, say: Say) -> tuple[dict[str, Any], Backtest]:
    """Run the backtest (and the comparison); returns the summary written to summary.json."""

    async def main() -> tuple[dict[str, Any], Backtest]:
        test, plan, kind = await _backtest(request, say)
        summary = test.summary()
        summary["source"] = {
            "topic": plan.topic,
            "why": {
                "embedded": "stored vectors (clustering speed)",
                "articles:retention": "articles-embedded no longer holds the range: re-embedded",
                "articles:model": "the run's model differs from the live one: re-embedded",
            }[kind],
            "window": request.window.describe(),
            "records_planned": plan.total,
            "started_at_earliest_kept": plan.clipped,
        }
        summary["overrides"] = dict(request.overrides or {})
        if request.compare:
            summary["compare"] = await _compare(request, test)
        test.close(summary)
        return summary, test

    return asyncio.run(main())
