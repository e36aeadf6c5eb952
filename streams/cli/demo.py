"""`storywatch demo`: local Kafka, a sample stream, the worker and its dashboard."""

from __future__ import annotations

from pathlib import Path

import click

from config.settings import load_settings
from streams.cli.errors import clean_errors

__all__ = ["demo"]

_SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "uci-headlines-sample.jsonl"


@click.command()
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path),
    default=_SAMPLE,
    show_default=True,
    help="JSONL stream to replay.",
)
@click.option("--rate", type=float, default=20.0, show_default=True, help="Articles per second.")
@click.option("--exit-when-done", is_flag=True, help="Stop once the stream is produced and shown.")
@clean_errors
def demo(file: Path, rate: float, exit_when_done: bool) -> None:
    """Start Kafka and a worker, stream the sample, and show stories forming (Ctrl-C stops)."""
    from streams.demo import run_demo

    run_demo(load_settings(), file, rate, exit_when_done=exit_when_done)
