"""`storywatch demo`: broker + worker + sample stream + a live view of the stories forming."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click

from config.settings import Settings
from streams.exceptions import BrokerError
from streams.kafka.connection import KafkaConnection
from streams.kafka.local import start_broker
from streams.producer import produce_file
from streams.watch import follow_stories

__all__ = ["run_demo"]

# Why 180 s: the worker loads torch and the model, then joins its consumer group.
_WORKER_READY_S = 180.0
# Why 15 s: once the stream is produced, the worker's last batches are embedded and clustered
# well within this; a longer silence means there is nothing more to show.
_QUIET_S = 15.0


def _wait_for_http(url: str, timeout_s: float, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise BrokerError(
                f"the worker exited with status {worker.returncode}: "
                "read its log (path above) and fix what it says"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own localhost URL
                return
        except OSError:
            time.sleep(1)
    raise BrokerError(f"the worker did not answer at {url} within {timeout_s:.0f}s: read its log")


def run_demo(
    settings: Settings, sample: Path, rate: float, *, exit_when_done: bool = False
) -> None:
    """Run the whole pipeline on ``sample`` until the stream is done and Ctrl-C is pressed."""
    if settings.kafka_bootstrap:
        bootstrap = settings.kafka_bootstrap
    else:
        info = start_broker(
            settings.kafka_dir,
            settings.kafka_version,
            port=settings.kafka_port,
            data_dir=settings.kafka_dir / "broker",
        )
        bootstrap = info.bootstrap
    run = f"demo-{int(time.time())}"  # fresh topics and group: a re-run starts a new stream
    env = {
        **os.environ,
        "STORYWATCH_APP_ID": f"storywatch-{run}",
        "STORYWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "STORYWATCH_DATA_DIR": str(settings.data_dir / run),
        **{
            f"STORYWATCH_TOPIC_{name.upper()}": f"{getattr(settings, 'topic_' + name)}-{run}"
            for name in ("articles", "dlq", "embedded", "stories", "alerts")
        },
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / f"{run}-worker.log"
    web = f"http://{settings.web_host}:{settings.web_port}"
    click.echo(f"Kafka: {bootstrap}\nworker log: {log_path}")
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_http(f"{web}/api/stories", _WORKER_READY_S, worker)
        stories_topic = env["STORYWATCH_TOPIC_STORIES"]
        click.echo(
            f"\nDashboard:  {web}/\nStories:    {web}/api/stories\nMetrics:    {web}/metrics\n"
            f"Topics:     {env['STORYWATCH_TOPIC_ARTICLES']} -> {stories_topic}, "
            f"{env['STORYWATCH_TOPIC_ALERTS']}, {env['STORYWATCH_TOPIC_DLQ']}\n"
            f"Watch them: STORYWATCH_KAFKA_BOOTSTRAP={bootstrap} .venv/bin/storywatch watch "
            f"--topic {stories_topic}\n\nStreaming {sample.name} at {rate:g} articles/s "
            "(Ctrl-C stops the demo):\n"
        )
        connection = KafkaConnection.from_settings(settings.kafka, bootstrap)
        producer = threading.Thread(
            target=produce_file,
            args=(sample, connection, env["STORYWATCH_TOPIC_ARTICLES"]),
            kwargs={"rate": rate},
            daemon=True,
        )
        producer.start()
        last_event = [time.monotonic()]

        def show(line: str) -> None:
            click.echo(line)
            last_event[0] = time.monotonic()

        def finished() -> bool:
            if worker.poll() is not None:
                return True
            quiet = time.monotonic() - last_event[0] > _QUIET_S
            return exit_when_done and not producer.is_alive() and quiet

        shown = follow_stories(
            connection,
            stories_topic,
            print_line=show,
            stop=finished,
            alerts_topic=env["STORYWATCH_TOPIC_ALERTS"],
        )
        if worker.poll() is not None:
            raise BrokerError(
                f"the worker stopped (status {worker.returncode}): read {log_path} and fix "
                "what it says"
            )
        click.echo(
            f"\nthe stream is done: {shown} events shown; the dashboard stays at {web}/ "
            "until you stop the demo"
            if not exit_when_done
            else f"\nthe stream is done: {shown} events shown"
        )
    except KeyboardInterrupt:
        click.echo("\nstopping the worker (Kafka keeps running: `storywatch kafka stop`)")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
