"""`storywatch kafka`: a local Apache Kafka broker (KRaft, 127.0.0.1) for the demo and tests,
and `require_broker`, the check every command that talks to Kafka makes first."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from config.settings import Settings, load_settings
from streams.cli.errors import clean_errors

__all__ = ["kafka", "require_broker"]


@click.group()
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
    from streams.kafka.local import start_broker, start_cluster

    settings = load_settings()
    first = port or settings.kafka_port
    mode = security or ("sasl_plaintext" if sasl else None)
    if mode and brokers != 1:
        raise click.UsageError("--security (and --sasl) start one broker: drop --brokers")
    if brokers == 1:
        folder = _broker_dir(settings, data_dir)
        secured = None
        if mode:
            from streams.kafka.local_security import local_security

            secured = local_security(
                mode,
                first,
                folder.resolve(),
                username=settings.kafka_sasl_username,
                password=settings.kafka.sasl_secret(),
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
    from streams.kafka.local import broker_status

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
    from streams.kafka.certs import LOCAL_HOSTS, client_properties, local_tls_files

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
    from streams.kafka.admin import ensure_topics, pipeline_topic_partitions

    settings = load_settings()
    created = set(
        ensure_topics(require_broker(settings), settings.kafka, settings.topics, settings.embed)
    )
    for name, partitions in pipeline_topic_partitions(settings.topics).items():
        state = "created" if name in created else "exists"
        click.echo(f"{name}: {partitions} partition(s), {state}")


#: The --data-dir of the commands that act on a broker `kafka start` started.
_started_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Broker (or cluster) data folder given to `kafka start`.",
)


@kafka.command("stop")
@_started_data_dir
@clean_errors
def kafka_stop(data_dir: Path | None) -> None:
    """Stop the local broker, or every node of the local cluster."""
    from streams.kafka.local import stop_broker, stop_cluster

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
@_started_data_dir
@clean_errors
def kafka_status(data_dir: Path | None) -> None:
    """Say whether the local broker (or each cluster node) runs (exit status 1 if none)."""
    from streams.kafka.local import broker_status, cluster_status

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


def require_broker(settings: Settings) -> str:
    from streams.exceptions import BrokerUnavailable
    from streams.kafka.connection import KafkaConnection
    from streams.kafka.diagnosis import check_connection
    from streams.kafka.local import port_is_open

    connection = KafkaConnection.from_settings(settings.kafka)
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
