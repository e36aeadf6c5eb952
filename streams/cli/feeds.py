"""``storywatch feeds``: add, import, list and remove the feeds the workers poll.

Feeds are data on the compacted ``feeds`` topic, written here directly to Kafka (acks=all), so
a list can be imported before any worker runs; a running worker picks a change up within a
second. ``list`` reads the feeds and their poll state from Kafka too.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from config.settings import Settings, load_settings
from streams.cli.errors import clean_errors
from streams.feeds.errors import FeedError, FeedListError
from streams.feeds.health import feed_health
from streams.feeds.model import FeedDef, parse_feed_list
from streams.feeds.state import FeedState

__all__ = ["feeds"]

# Why 30 s: a healthy broker acknowledges a few hundred small records in well under a second.
_SEND_TIMEOUT_S = 30.0


def _broker(settings: Settings) -> str:
    from streams.cli.kafka import require_broker
    from streams.kafka.admin import ensure_topics

    address = require_broker(settings)
    ensure_topics(address, settings.kafka, settings.topics, settings.embed)
    return address


def _write(settings: Settings, records: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Write ``(feed id, record or None)`` to the feeds topic and wait for every ack."""
    from kafka.errors import KafkaError

    from streams.kafka.connection import KafkaConnection

    address = _broker(settings)
    # The one connection layer: TLS and the login as the worker's.
    producer = KafkaConnection.from_settings(settings.kafka, address).producer(
        acks="all", enable_idempotence=True
    )
    try:
        futures = [
            producer.send(
                settings.topic_feeds,
                key=key.encode(),
                value=None if record is None else json.dumps(record).encode(),
            )
            for key, record in records
        ]
        for future in futures:
            future.get(timeout=_SEND_TIMEOUT_S)
    except KafkaError as exc:
        raise FeedError(
            f"writing to {settings.topic_feeds} at {address} failed ({exc}); nothing is "
            "half-done that a retry would double: run the command again"
        ) from exc
    finally:
        producer.close()


def _read(settings: Settings) -> tuple[dict[str, FeedDef], dict[str, FeedState]]:
    from streams.feeds.store import read_topic

    _broker(settings)

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            await read_topic(settings.kafka, settings.topic_feeds),
            await read_topic(settings.kafka, settings.topic_feed_state),
        )

    feeds_raw, states_raw = asyncio.run(both())
    feeds = {k: FeedDef.from_record(v) for k, v in feeds_raw.items()}
    states = {k: FeedState.from_record(v) for k, v in states_raw.items()}
    return feeds, states


@click.group()
def feeds() -> None:
    """Manage the RSS, Atom and JSON feeds the workers poll (docs/FEEDS.md)."""


@feeds.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@clean_errors
def import_feeds(file: Path) -> None:
    """Add every feed of FILE: OPML 2.0 (a feed reader's export) or one URL a line."""
    settings = load_settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise FeedListError(f"cannot read {file} ({exc.strerror}); check the path") from None
    found = parse_feed_list(data, source=str(file))
    existing, _ = _read(settings)
    new = [f for f in found if f.id not in existing]
    _write(settings, [(f.id, f.to_record()) for f in new])
    click.echo(
        f"imported {len(new)} feeds from {file} ({len(found) - len(new)} already there); "
        "a running worker polls them within a second"
    )


@feeds.command("add")
@click.argument("url")
@click.option(
    "--name", default=None, help="Shown as the articles' source (default: the feed's title)."
)
@click.option(
    "--interval",
    type=float,
    default=None,
    help="Seconds between polls (default: STORYWATCH_FEED_POLL_S).",
)
@clean_errors
def add(url: str, name: str | None, interval: float | None) -> None:
    """Add (or update) the feed at URL."""
    settings = load_settings()
    feed = FeedDef.new(url, name=name, interval_s=interval)
    _write(settings, [(feed.id, feed.to_record())])
    click.echo(f"added {feed.id} {feed.url}")


@feeds.command("rm")
@click.argument("feed_id")
@clean_errors
def rm(feed_id: str) -> None:
    """Remove the feed FEED_ID (see `storywatch feeds list`)."""
    settings = load_settings()
    existing, _ = _read(settings)
    if feed_id not in existing:
        raise FeedError(f"no feed {feed_id!r}: `storywatch feeds list` shows the ids")
    _write(settings, [(feed_id, None)])
    click.echo(f"removed {feed_id} {existing[feed_id].url}")


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@clean_errors
def list_feeds(as_json: bool) -> None:
    """Every feed with its health: status, last success, last error, items in the last day,
    next poll."""
    settings = load_settings()
    found, states = _read(settings)
    now = time.time()
    rows = [feed_health(f, states.get(f.id), now) for f in sorted(found.values(), key=_order)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no feeds: add one with `storywatch feeds add URL` or `feeds import FILE`")
        return
    for row in rows:
        click.echo(
            f"{row['id']}  {row['status']:<8} items/24h={row['items_last_day']:<5} "
            f"last_success={row['last_success'] or '-'}  next_poll={row['next_poll'] or '-'}  "
            f"{row['name'] or ''} <{row['url']}>"
        )
        if row["last_error"] and row["status"] != "ok":
            click.echo(f"    last error ({row['last_error_at']}): {row['last_error']}")


def _order(feed: FeedDef) -> tuple[str, str]:
    return ((feed.name or "").lower(), feed.url)
