"""The ``storywatch`` command line: one entry point, ``--help`` on every command."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from config.settings import Settings, load_settings
from streams.cli_errors import clean_errors
from streams.feeds_cli import feeds
from streams.history_cli import history
from streams.rebuild_cli import rebuild
from streams.replay_cli import replay
from streams.subscriptions_cli import subscriptions

__all__ = ["main"]

_SAMPLE = Path(__file__).resolve().parent / "samples" / "uci-headlines-sample.jsonl"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Storywatch: group the news stream into stories, live, on Kafka."""


# --- kafka -------------------------------------------------------------------------------


@main.group()
def kafka() -> None:
    """Run a local Apache Kafka broker (KRaft, 127.0.0.1) for the demo and tests."""


def _broker_dir(settings: Settings, data_dir: Path | None) -> Path:
    return data_dir or settings.kafka_dir / "broker"


@kafka.command("start")
@click.option("--port", type=int, default=None, help="Client port [STORYWATCH_KAFKA_PORT].")
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=1,
    show_default=True,
    help="Nodes: 3 starts a KRaft cluster on ports PORT..PORT+2 (replication 3, "
    "min.insync.replicas 2); point workers at it with STORYWATCH_REPLICATION_FACTOR=3.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Broker data folder [default: under STORYWATCH_KAFKA_HOME].",
)
@click.option(
    "--security",
    type=click.Choice(["ssl", "mtls", "sasl_ssl", "sasl_plaintext"]),
    default=None,
    help="One broker whose clients must use TLS (ssl), TLS with a client certificate (mtls), "
    "SCRAM-SHA-256/512 over TLS (sasl_ssl) or PLAIN over plaintext (sasl_plaintext). A "
    "private CA and certificates are made in the data folder; the SASL user is "
    "STORYWATCH_KAFKA_SASL_USERNAME/PASSWORD if set, else `storywatch` with a generated "
    "password. Prints the `export` line a client needs.",
)
@click.option("--sasl", is_flag=True, help="The same as --security sasl_plaintext.")
@clean_errors
def kafka_start(
    port: int | None, brokers: int, data_dir: Path | None, security: str | None, sasl: bool
) -> None:
    """Fetch the Kafka jars (once, with Maven) and start the broker(s) in the background."""
    from streams.kafka_local import start_broker, start_cluster

    settings = load_settings()
    first = port or settings.kafka_port
    mode = security or ("sasl_plaintext" if sasl else None)
    if mode and brokers != 1:
        raise click.UsageError("--security (and --sasl) start one broker: drop --brokers")
    if brokers == 1:
        folder = _broker_dir(settings, data_dir)
        secured = None
        if mode:
            from streams.kafka_local_security import local_security

            secured = local_security(
                mode,
                first,
                folder.resolve(),
                username=settings.kafka_sasl_username,
                password=settings.kafka_sasl_secret(),
            )
        info = start_broker(
            settings.kafka_dir,
            settings.kafka_version,
            port=first,
            data_dir=folder,
            security=secured.security if secured else None,
        )
        click.echo(
            f"Kafka {settings.kafka_version} running at {info.bootstrap} (pid {info.pid}, "
            f"data {info.data_dir})"
        )
        if secured:
            click.echo(f"{mode}: a client needs (the password is never printed):")
            click.echo("export " + " ".join(f"{k}={v}" for k, v in secured.env.items()))
        return
    nodes = start_cluster(
        settings.kafka_dir,
        settings.kafka_version,
        ports=[first + i for i in range(brokers)],
        data_dir=data_dir or settings.kafka_dir / "cluster",
    )
    bootstrap = ",".join(info.bootstrap for info in nodes)
    click.echo(
        f"Kafka {settings.kafka_version}: {brokers} brokers running, pids "
        f"{' '.join(str(i.pid) for i in nodes)}, data {nodes[0].data_dir.parent}"
    )
    click.echo(
        f"export STORYWATCH_KAFKA_BOOTSTRAP={bootstrap} STORYWATCH_REPLICATION_FACTOR="
        f"{min(3, brokers)} STORYWATCH_MIN_INSYNC_REPLICAS={2 if brokers >= 3 else 1}"
    )


def _nodes_dir(settings: Settings, data_dir: Path | None) -> Path | None:
    """The cluster folder named (or the default one) when it holds nodes; else None."""
    folder = data_dir or settings.kafka_dir / "cluster"
    return (
        folder
        if any(folder.glob("node-*")) and (data_dir or not _single_running(settings))
        else None
    )


def _single_running(settings: Settings) -> bool:
    from streams.kafka_local import broker_status

    return broker_status(_broker_dir(settings, None)) is not None


@kafka.command("certs")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder for the PEM files."
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A name or IP address clients reach the broker by (repeat it) [127.0.0.1, localhost].",
)
@clean_errors
def kafka_certs(out: Path, hosts: tuple[str, ...]) -> None:
    """Make a private CA, a broker keystore and a client certificate as PEM files (for a TLS
    broker you run, e.g. docker/compose.tls.yaml); files already there are kept."""
    from streams.kafka_certs import LOCAL_HOSTS, client_properties, local_tls_files

    files = local_tls_files(out, hosts or LOCAL_HOSTS)
    client_properties(files, out / "kafka-client.properties")
    click.echo(
        f"CA {files.ca.cert}, broker keystore {files.keystore} (key + chain, "
        f"ssl.keystore.type=PEM), client certificate {files.client_cert} and key "
        f"{files.client_key}; the keys are readable by their owner only"
    )


@kafka.command("topics")
@clean_errors
def kafka_topics() -> None:
    """Create the pipeline's topics on STORYWATCH_KAFKA_BOOTSTRAP (the partition plan the
    workers use; STORYWATCH_REPLICATION_FACTOR copies) and print the plan."""
    from streams.admin import ensure_topics, pipeline_topic_partitions

    settings = load_settings()
    created = set(ensure_topics(_require_broker(settings), settings))
    for name, partitions in pipeline_topic_partitions(settings).items():
        state = "created" if name in created else "exists"
        click.echo(f"{name}: {partitions} partition(s), {state}")


@kafka.command("stop")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Broker (or cluster) data folder given to `kafka start`.",
)
@clean_errors
def kafka_stop(data_dir: Path | None) -> None:
    """Stop the local broker, or every node of the local cluster."""
    from streams.kafka_local import stop_broker, stop_cluster

    settings = load_settings()
    nodes = _nodes_dir(settings, data_dir)
    if nodes is not None:
        stopped = stop_cluster(nodes)
        click.echo(
            f"Kafka stopped ({stopped} brokers)" if stopped else "no local Kafka was running"
        )
        return
    stopped_one = stop_broker(_broker_dir(settings, data_dir))
    click.echo("Kafka stopped" if stopped_one else "no local Kafka was running")


@kafka.command("status")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Broker (or cluster) data folder given to `kafka start`.",
)
@clean_errors
def kafka_status(data_dir: Path | None) -> None:
    """Say whether the local broker (or each cluster node) runs (exit status 1 if none)."""
    from streams.kafka_local import broker_status, cluster_status

    settings = load_settings()
    nodes = _nodes_dir(settings, data_dir)
    if nodes is not None:
        states = cluster_status(nodes)
        for number, info in enumerate(states, start=1):
            click.echo(
                f"node {number}: "
                + (f"running at {info.bootstrap} (pid {info.pid})" if info else "not running")
            )
        if not any(states):
            click.echo("no node is running: start them with `storywatch kafka start --brokers N`")
            sys.exit(1)
        return
    info = broker_status(_broker_dir(settings, data_dir))
    if info is None:
        click.echo("no local Kafka is running: start one with `storywatch kafka start`")
        sys.exit(1)
    click.echo(f"Kafka running at {info.bootstrap} (pid {info.pid}, data {info.data_dir})")


def _require_broker(settings: Settings) -> str:
    from streams.exceptions import BrokerUnavailable
    from streams.kafka_connection import KafkaConnection
    from streams.kafka_diagnosis import check_connection
    from streams.kafka_local import port_is_open

    connection = KafkaConnection.from_settings(settings)
    connection.ssl_context()  # a CA or client certificate file that is not PEM: say so first
    address = settings.bootstrap
    hosts = [item.strip().rpartition(":") for item in address.split(",") if item.strip()]
    if not any(
        port_is_open(host or "127.0.0.1", int(port), timeout_s=3.0) for host, _, port in hosts
    ):
        source = (
            "STORYWATCH_KAFKA_BOOTSTRAP"
            if settings.kafka_bootstrap
            else "the local broker (STORYWATCH_KAFKA_PORT)"
        )
        raise BrokerUnavailable(
            f"no Kafka broker answers at {address} ({source}): run `storywatch kafka start` "
            "or set STORYWATCH_KAFKA_BOOTSTRAP to a running broker"
        )
    # TLS and the login, checked before anything is read or written: a refused one fails
    # here in seconds with the setting to fix (and a worker exits instead of retrying).
    check_connection(connection)
    return address


# --- worker / produce ---------------------------------------------------------------------


@main.command()
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
    from streams.admin import ensure_topics
    from streams.data_dir import check_writable

    check_writable(settings.data_dir)
    ensure_topics(_require_broker(settings), settings)
    from faust.worker import Worker

    from streams.app import app, embedder
    from streams.log_limits import limit_kafka_client_logs

    # Load the model before consuming: otherwise the first batch after a start waits for it.
    embedder.load()
    limit_kafka_client_logs()
    Worker(app, loglevel=loglevel).execute_from_commandline()


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--rate", type=float, default=0.0, help="Articles per second (0: as fast as possible)."
)
@click.option("--topic", default=None, help="Target topic [STORYWATCH_TOPIC_ARTICLES].")
@clean_errors
def produce(file: Path, rate: float, topic: str | None) -> None:
    """Publish a JSON-lines file of articles to the articles topic, in file order."""
    from streams.admin import ensure_topics
    from streams.kafka_connection import KafkaConnection
    from streams.producer import produce_file

    settings = load_settings()
    address = _require_broker(settings)
    ensure_topics(address, settings)
    sent = produce_file(
        file,
        KafkaConnection.from_settings(settings, address),
        topic or settings.topic_articles,
        rate=rate,
        progress=True,
    )
    click.echo(f"sent {sent} records to {topic or settings.topic_articles} at {address}")


@main.command()
@click.option("--topic", default=None, help="Stories topic [STORYWATCH_TOPIC_STORIES].")
@click.option("--alerts-topic", default=None, help="Also print this alerts topic's events.")
@click.option("--from-beginning/--new-only", default=True, show_default=True)
@clean_errors
def watch(topic: str | None, alerts_topic: str | None, from_beginning: bool) -> None:
    """Print story assignments as they happen (Ctrl-C stops)."""
    from streams.kafka_connection import KafkaConnection
    from streams.watch import follow_stories

    settings = load_settings()
    address = _require_broker(settings)
    with contextlib.suppress(KeyboardInterrupt):
        follow_stories(
            KafkaConnection.from_settings(settings, address),
            topic or settings.topic_stories,
            print_line=click.echo,
            stop=lambda: False,
            from_beginning=from_beginning,
            alerts_topic=alerts_topic,
        )


# --- offline -------------------------------------------------------------------------------


def _embed_file(file: Path, settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    from streams.engine.embedding import Embedder
    from streams.engine.offline import embed_rows, read_jsonl

    rows = read_jsonl(file)
    embedder = Embedder.from_settings(settings)
    embedder.load()  # before the clock starts: articles/s measures the stream, not start-up
    with click.progressbar(length=len(rows), label="embedding", file=sys.stderr) as bar:
        stream = embed_rows(
            rows,
            embedder,
            max_chars=settings.embed_max_chars,
            batch_size=settings.embed_batch_size,
            progress=bar.update,
        )
    for number, reason in stream.invalid:
        click.echo(f"skipped row {number}: {reason} (the worker sends it to the DLQ)", err=True)
    return rows, stream


def _run_offline(file: Path, settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    from streams.engine.clustering import ClusterParams
    from streams.engine.offline import cluster_stream

    rows, stream = _embed_file(file, settings)
    return rows, cluster_stream(stream, ClusterParams.from_settings(settings))


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output JSONL: {id, story_id, dup_group_id} per article.",
)
@clean_errors
def cluster(file: Path, out: Path) -> None:
    """Cluster a JSONL file offline (no Kafka), same engine and defaults as the worker."""
    _, run = _run_offline(file, load_settings())
    final = run.final_story_ids()  # merged stories followed (STORYWATCH_MERGE_BRIDGES)
    with out.open("w", encoding="utf-8") as handle:
        for a in run.assignments:
            handle.write(
                json.dumps(
                    {
                        "id": a.article_id,
                        "story_id": final[a.article_id],
                        "dup_group_id": a.dup_group_id,
                    }
                )
                + "\n"
            )
    merged = f", {len(run.merges)} merged" if run.merges else ""
    click.echo(
        f"{len(run.assignments)} articles -> {len(set(final.values()))} "
        f"stories{merged} in {out} ({len(run.assignments) / max(run.seconds, 1e-9):.1f} articles/s)"
    )


# Why this grid: the story bar from loose (0.35) to strict (0.75) around the default, fine
# enough (0.05) to show how flat the optimum is. (The near-duplicate bar only splits groups
# inside a story, so it cannot change these scores.)
_SWEEP_STORY = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)


@main.command("eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--sweep", is_flag=True, help="Also score a grid of the main thresholds.")
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also score judged pairs: JSONL of {a, b, same_story} naming FILE's article ids "
    "(bench/derive_pairs.py makes them from a labeled file).",
)
@clean_errors
def evaluate(file: Path, sweep: bool, pairs_file: Path | None) -> None:
    """Cluster a labeled JSONL file offline and score it against its `label` field."""
    from dataclasses import replace

    from streams.engine.clustering import ClusterParams
    from streams.engine.evaluation import score
    from streams.engine.offline import cluster_stream
    from streams.engine.pairs import read_pairs, score_pairs
    from streams.exceptions import InputFileError

    settings = load_settings()
    pairs = read_pairs(pairs_file) if pairs_file is not None else None  # fail before embedding
    rows, stream = _embed_file(file, settings)
    gold = {str(r["id"]): r.get("label") for r in rows}
    if any(gold[a.id] is None for a in stream.articles):
        raise InputFileError(f"{file}: some articles have no 'label'; eval needs labeled data")
    params = ClusterParams.from_settings(settings)
    run = cluster_stream(stream, params)
    ids = [a.article_id for a in run.assignments]
    scores = score([str(gold[i]) for i in ids], [a.story_id for a in run.assignments])
    n = len(run.assignments)
    lines = [
        ("file", str(file)),
        ("articles", str(n)),
        ("stories (gold)", f"{scores.stories} ({scores.gold_stories})"),
        ("B-cubed precision", f"{scores.precision:.4f}"),
        ("B-cubed recall", f"{scores.recall:.4f}"),
        ("B-cubed F1", f"{scores.f1:.4f}"),
        ("AMI", f"{scores.ami:.4f}"),
        ("ARI", f"{scores.ari:.4f}"),
        ("articles/s", f"{n / max(run.seconds, 1e-9):.1f}"),
        ("clustering articles/s", f"{n / max(run.cluster_seconds, 1e-9):.0f}"),
    ]
    final = run.final_story_ids()
    if params.merge_bridges > 0:  # the lines above: at arrival; these: after the merges
        end = score([str(gold[i]) for i in ids], [final[i] for i in ids])
        lines += [
            ("merges", str(len(run.merges))),
            ("final stories", str(end.stories)),
            ("final B-cubed precision", f"{end.precision:.4f}"),
            ("final B-cubed recall", f"{end.recall:.4f}"),
            ("final B-cubed F1", f"{end.f1:.4f}"),
            ("final AMI", f"{end.ami:.4f}"),
            ("final ARI", f"{end.ari:.4f}"),
        ]
    if pairs is not None:  # judged on the final stories
        judged = score_pairs(pairs, final)
        lines += [
            ("pairs", f"{judged.pairs} ({judged.missing} naming unassigned articles skipped)"),
            ("pair accuracy", f"{judged.accuracy:.4f}"),
            ("different-events precision", f"{judged.different_precision:.4f}"),
            ("different-events recall", f"{judged.different_recall:.4f}"),
        ]
        lines += [
            (f"accuracy, {kind or 'unlabeled'} pairs", f"{acc:.4f} ({count})")
            for kind, (count, acc) in judged.accuracy_by_kind.items()
        ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")
    if not sweep:
        return
    click.echo("\nstory_threshold  precision  recall  F1      stories")
    for story_bar in _SWEEP_STORY:
        trial = cluster_stream(stream, replace(params, story_threshold=story_bar))
        s = score(
            [str(gold[a.article_id]) for a in trial.assignments],
            [a.story_id for a in trial.assignments],
        )
        mark = "  <- default" if story_bar == params.story_threshold else ""
        click.echo(
            f"{story_bar:<16.2f} {s.precision:<10.4f} {s.recall:<7.4f} {s.f1:<7.4f} "
            f"{s.stories}{mark}"
        )


# --- demo --------------------------------------------------------------------------------


@main.command()
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


main.add_command(subscriptions)
main.add_command(feeds)
main.add_command(replay)
main.add_command(history)
main.add_command(rebuild)


if __name__ == "__main__":  # pragma: no cover
    main()
