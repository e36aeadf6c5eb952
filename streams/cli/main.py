"""The ``storywatch`` command line: one entry point, ``--help`` on every command.

Each command group lives in its own module of this package; this one only gathers them.
"""

from __future__ import annotations

import click

from streams.cli.demo import demo
from streams.cli.feeds import feeds
from streams.cli.history import history
from streams.cli.kafka import kafka
from streams.cli.offline import cluster, evaluate
from streams.cli.pipeline import produce, watch, worker
from streams.cli.rebuild import rebuild
from streams.cli.replay import replay
from streams.cli.subscriptions import subscriptions

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Storywatch: group the news stream into stories, live, on Kafka."""


for _command in (
    kafka,
    worker,
    produce,
    watch,
    cluster,
    evaluate,
    demo,
    subscriptions,
    feeds,
    replay,
    history,
    rebuild,
):
    main.add_command(_command)
