"""`storywatch worker`, `produce` and `watch`: run the pipeline, feed it, follow it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from config.settings import load_settings
from streams.cli.errors import clean_errors
from streams.cli.kafka import require_broker

__all__ = ["produce", "watch", "worker"]


@click.command()
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@clean_errors
def worker(loglevel: str) -> None:
    """Run the Faust worker: embed, cluster, alert; web on STORYWATCH_WEB_PORT."""
    settings = load_settings()
    from streams.data_dir import check_writable
    from streams.kafka.admin import ensure_topics

    check_writable(settings.data_dir)
    ensure_topics(require_broker(settings), settings.kafka, settings.topics, settings.embed)
    from faust.worker import Worker

    from streams.kafka.log_limits import limit_kafka_client_logs
    from streams.pipeline import build_app

    pipeline = build_app(settings)
    # Load the model before consuming: otherwise the first batch after a start waits for it.
    pipeline.embedder.load()
    limit_kafka_client_logs()
    Worker(pipeline.app, loglevel=loglevel).execute_from_commandline()


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--rate", type=float, default=0.0, help="Articles per second (0: as fast as possible)."
)
@click.option("--topic", default=None, help="Target topic [STORYWATCH_TOPIC_ARTICLES].")
@clean_errors
def produce(file: Path, rate: float, topic: str | None) -> None:
    """Publish a JSON-lines file of articles to the articles topic, in file order."""
    from streams.kafka.admin import ensure_topics
    from streams.kafka.connection import KafkaConnection
    from streams.producer import produce_file

    settings = load_settings()
    address = require_broker(settings)
    ensure_topics(address, settings.kafka, settings.topics, settings.embed)
    sent = produce_file(
        file,
        KafkaConnection.from_settings(settings.kafka, address),
        topic or settings.topic_articles,
        rate=rate,
        progress=True,
    )
    click.echo(f"sent {sent} records to {topic or settings.topic_articles} at {address}")


@click.command()
@click.option("--topic", default=None, help="Stories topic [STORYWATCH_TOPIC_STORIES].")
@click.option("--alerts-topic", default=None, help="Also print this alerts topic's events.")
@click.option("--from-beginning/--new-only", default=True, show_default=True)
@clean_errors
def watch(topic: str | None, alerts_topic: str | None, from_beginning: bool) -> None:
    """Print story assignments as they happen (Ctrl-C stops)."""
    from streams.kafka.connection import KafkaConnection
    from streams.watch import follow_stories

    settings = load_settings()
    address = require_broker(settings)
    with contextlib.suppress(KeyboardInterrupt):
        follow_stories(
            KafkaConnection.from_settings(settings.kafka, address),
            topic or settings.topic_stories,
            print_line=click.echo,
            stop=lambda: False,
            from_beginning=from_beginning,
            alerts_topic=alerts_topic,
        )
