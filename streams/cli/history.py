"""``storywatch history stories|alerts``: the live run's outputs by time, as a table or JSON
lines (for scripts)."""

from __future__ import annotations

import json
from typing import Any

import click

from streams.cli.errors import clean_errors

__all__ = ["history", "history_row"]


def _matches(value: dict[str, Any], query: str | None, story: str | None) -> bool:
    raw = value.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    story_ids = {
        value.get("story_id"),
        value.get("absorbed_id"),  # a merged event is about both stories
        value.get("subject"),
        data.get("story_id"),
    }
    story_ids.add((data.get("story") or {}).get("story_id"))
    if story is not None and story not in story_ids:
        return False
    if query:
        text = " ".join(
            str(x)
            for x in (
                value.get("headline"),
                value.get("title"),
                data.get("headline"),
                (data.get("story") or {}).get("headline"),
            )
            if x
        ).lower()
        if query.lower() not in text:
            return False
    return True


def history_row(kind: str, timestamp: int, value: dict[str, Any]) -> str:
    from streams.time_ranges import format_ms

    when = format_ms(timestamp)
    if kind == "stories" and value.get("absorbed_id"):
        return (
            f"{when}  {value.get('story_id', '?')}  {'merged':<9} "
            f"size {value.get('story_size', '?'):<5} absorbed {value['absorbed_id']}: "
            f"{str(value.get('headline', ''))[:50]}"
        )
    if kind == "stories":
        return (
            f"{when}  {value.get('story_id', '?')}  {value.get('decision', '?'):<9} "
            f"size {value.get('story_size', '?'):<5} {str(value.get('title', ''))[:70]}"
        )
    data = value.get("data") or {}
    headline = data.get("headline") or (data.get("story") or {}).get("headline", "")
    return f"{when}  {value.get('subject', '?')}  {value.get('type', '?')}  {headline[:60]}"


@click.command()
@click.argument("kind", type=click.Choice(["stories", "alerts"]))
@click.option("--since", default=None, help="Start: 2026-12-01T10:00:00Z, 2026-12-01, 24h, 7d.")
@click.option("--until", default=None, help="End (exclusive), same forms [default: now].")
@click.option("--query", default=None, help="Only events whose headline or title holds TEXT.")
@click.option("--story", "story", default=None, help="Only this story id's events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, for scripts.")
@clean_errors
def history(  # noqa: PLR0917 - click passes options positionally
    kind: str,
    since: str | None,
    until: str | None,
    query: str | None,
    story: str | None,
    as_json: bool,
) -> None:
    """Story events or alerts of a time range, read from the `stories` / `alerts` topics by
    the Kafka time of the article that caused them (no consumer group, nothing committed)."""
    import asyncio

    from config.settings import load_settings
    from streams.kafka.connection import KafkaConnection
    from streams.kafka.diagnosis import check_connection
    from streams.kafka.window import Plan
    from streams.replay.history import read_history
    from streams.time_ranges import format_ms, parse_range

    settings = load_settings()
    window = parse_range(since, until, start_name="--since", end_name="--until")
    check_connection(
        KafkaConnection.from_settings(settings.kafka)
    )  # TLS and login: fail fast, say what
    topic = settings.topic_stories if kind == "stories" else settings.topic_alerts

    def told(plan: Plan) -> None:
        if plan.clipped:
            assert plan.earliest_ms is not None
            click.echo(
                f"--since is older than the oldest record kept on {topic}: showing from "
                f"{format_ms(plan.earliest_ms)}",
                err=True,
            )

    found = asyncio.run(
        read_history(settings.kafka, topic, window, lambda v: _matches(v, query, story), told)
    )
    for record in found:
        if as_json:
            click.echo(
                json.dumps(
                    {"time": format_ms(record.timestamp), "offset": record.offset, **record.value},
                    sort_keys=True,
                )
            )
        else:
            click.echo(history_row(kind, record.timestamp, record.value))
    if not as_json:
        click.echo(f"{len(found)} {kind} in {window.describe()}", err=True)
