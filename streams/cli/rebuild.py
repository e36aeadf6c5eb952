"""``storywatch rebuild``: re-derive the live story state from the history in Kafka."""

from __future__ import annotations

import click

from streams.cli.errors import clean_errors

__all__ = ["rebuild"]


@click.command()
@click.option("--from", "start", required=True, help="Rebuild from: 2026-12-01, 30d, ISO-8601.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for the workers to stop before switching.",
)
@clean_errors
def rebuild(start: str, wait_s: float) -> None:
    """Replay articles-embedded from --from into a new story state while the workers run,
    then, once they are stopped, switch the story tables' changelogs to it. Start the
    workers again afterwards: they load the new state."""
    from config.settings import load_settings
    from streams.kafka.connection import KafkaConnection
    from streams.kafka.diagnosis import check_connection
    from streams.replay.rebuild import rebuild_state
    from streams.time_ranges import now_ms, parse_instant

    settings = load_settings()
    start_ms = parse_instant(start, now=now_ms(), name="--from")
    check_connection(
        KafkaConnection.from_settings(settings.kafka)
    )  # TLS and login: fail fast, say what
    result = rebuild_state(
        settings, start_ms, lambda line: click.echo(line, err=True), wait_s=wait_s
    )
    click.echo(
        f"switched: {result.articles} articles -> {result.stories} active stories; "
        f"{result.written} table records written, {result.deleted} removed; the cluster "
        f"stage resumes at offset {result.offset} of {settings.topic_embedded}. "
        "Start the workers: they load the new state."
    )
