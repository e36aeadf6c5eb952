"""Run a real Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1, alone or
as a cluster of several (``start_cluster``: each node in ``<data dir>/node-<id>``).

Used by ``storywatch kafka start`` and by the integration tests. The broker jars come from
Maven Central (``kafka-broker/pom.xml``); the broker runs detached, so it outlives the Python
process that started it, and everything about it lives in one data folder: ``server.properties``,
``log4j.properties``, ``broker.log``, ``broker.pid`` and the ``logs`` folder of partitions.
Nothing here runs at import time.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.exceptions import BrokerError

__all__ = [
    "BrokerInfo",
    "broker_status",
    "cluster_status",
    "ensure_jars",
    "free_port",
    "port_is_open",
    "start_broker",
    "start_cluster",
    "stop_broker",
    "stop_cluster",
    "wait_for_port",
]

HOST = "127.0.0.1"
#: The line Kafka logs once the broker serves requests (KafkaBroker.STARTED_MESSAGE).
STARTED_MESSAGE = "Kafka Server started"
# Why these flags: a small heap and the serial collector suit a 2-core machine shared with
# tests; C1-only JIT (TieredStopAtLevel=1) makes startup faster, and a demo broker needs no C2.
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError")
# Kafka logs INFO; these loggers are noisy at INFO. "Kafka Server started" comes from kafka.server.
_QUIET = (
    "org.apache.kafka",
    "org.apache.zookeeper",
    "kafka.log",
    "kafka.raft",
    "kafka.network",
    "kafka.request.logger",
    "state.change.logger",
    "kafka.server.metadata",
    "kafka.server.KafkaConfig",
    "kafka.server.NodeToControllerRequestThread",
    "kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper",
    "kafka.server.ClientQuotaManager$ThrottledChannelReaper",
)
_LOG4J = "".join(f"log4j.logger.{name}=WARN\n" for name in _QUIET) + (
    "log4j.rootLogger=INFO, stdout\n"
    "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
    "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
    "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
)


@dataclass(frozen=True)
class BrokerInfo:
    """A running local broker: its ports, data folder and JVM process id."""

    port: int
    controller_port: int
    data_dir: Path
    pid: int

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"{HOST}:{self.port}"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> bool:
    """Poll until ``host:port`` accepts connections; False if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return True
        time.sleep(0.2)
    return False


def _port_taken(port: int) -> bool:
    # SO_REUSEADDR like the JVM's server sockets: TIME_WAIT leftovers don't count as taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _mvn_error(output: str) -> str:
    """Maven's first real ``[ERROR]`` line, else its last lines, without colour codes."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and len(ln) > 8]
    return (errors[0] if errors else " | ".join(lines[-5:])) or "no output"


def ensure_jars(kafka_dir: Path, version: str, pom: Path | None = None) -> Path:
    """Return ``kafka_dir/libs``, first fetching the broker jars with Maven if it has none."""
    libs = kafka_dir / "libs"
    if any(libs.glob("kafka_2.13-*.jar")):
        return libs
    pom = pom or Path(__file__).resolve().parents[1] / "kafka-broker" / "pom.xml"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) not found: install Maven to fetch the Kafka broker jars")
    kafka_dir.mkdir(parents=True, exist_ok=True)
    # Download into a temporary folder and rename it, so a cut-off download never looks done.
    tmp = Path(tempfile.mkdtemp(prefix=".libs-", dir=kafka_dir))
    try:
        goal = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
        props = [f"-Dkafka.version={version}", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        done = subprocess.run([*goal, *props], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"mvn could not fetch Kafka {version} jars (check the network to "
                f"Maven Central and that the version exists): "
                f"{_mvn_error(done.stdout + done.stderr)}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _alive(pid: int) -> bool:
    """True if ``pid`` runs a Kafka broker: not a zombie, not a recycled pid (where /proc is)."""
    proc = Path(f"/proc/{pid}")
    try:
        if not Path("/proc/self").exists():  # no procfs (macOS): only ask whether pid exists
            os.kill(pid, 0)
            return True
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X") and b"kafka.Kafka" in (proc / "cmdline").read_bytes()
    except PermissionError:
        return True
    except (OSError, IndexError):
        return False


def broker_status(data_dir: Path) -> BrokerInfo | None:
    """The broker recorded in ``data_dir`` if its process is alive, else None."""
    try:
        pid = int((data_dir / "broker.pid").read_text().strip())
        props = dict(
            line.split("=", 1)
            for line in (data_dir / "server.properties").read_text().splitlines()
            if "=" in line
        )
        ports = dict(item.split("://", 1) for item in props["listeners"].split(","))
        client = ports.get("PLAINTEXT") or ports["SASL_PLAINTEXT"]
        port, cport = (int(address.rsplit(":", 1)[1]) for address in (client, ports["CONTROLLER"]))
    except (OSError, ValueError, KeyError):
        return None
    return BrokerInfo(port, cport, data_dir, pid) if _alive(pid) else None


def _cluster_id() -> str:
    """A random Kafka cluster id: 22 chars of url-safe base64, never starting with "-"."""
    while True:  # like Kafka's Uuid.randomUuid: "-..." would be read as a command-line option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _sasl_props(users: Mapping[str, str]) -> dict[str, str]:
    """SASL/PLAIN on the client listener: ``users`` (name -> password) may log in; the
    brokers talk to each other as a generated user of their own."""
    broker_password = secrets.token_urlsafe(16)
    accounts = {"broker": broker_password, **users}
    for name, password in accounts.items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or '"' in password or "\\" in password:
            raise BrokerError(
                f"SASL user {name!r}: use letters, digits, '.', '_' or '-' in the name and "
                'no " or \\ in the password'
            )
    jaas = " ".join(f'user_{name}="{password}"' for name, password in accounts.items())
    return {
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="broker" password="{broker_password}" {jaas};'
        ),
    }


def _write_config(
    data_dir: Path,
    port: int,
    cport: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    sasl_users: Mapping[str, str] | None = None,
) -> Path:
    """One node's ``server.properties``. Alone (``voters`` None) it is its own quorum with
    replication 1; in a cluster every node is broker and controller, and each topic gets 3
    replicas of which 2 must have a write (``min.insync.replicas``) before it is acked.
    With ``sasl_users`` the client listener is SASL_PLAINTEXT (PLAIN) instead of PLAINTEXT."""
    replicas = 1 if voters is None else min(3, voters.count("@"))
    min_isr = 1 if replicas < 3 else 2
    client = "SASL_PLAINTEXT" if sasl_users else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{cport}",
        "listeners": f"{client}://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"{client}://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{client}:{client}",
        **(_sasl_props(sasl_users) if sasl_users else {}),
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "4",  # fewer partitions: faster first consumer group
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }
    config = data_dir / "server.properties"
    config.touch(mode=0o600)  # it may hold SASL passwords: readable by its owner only
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="utf-8")
    (data_dir / "log4j.properties").write_text(_LOG4J, encoding="utf-8")
    return config


def start_broker(
    kafka_dir: Path,
    version: str,
    *,
    port: int,
    data_dir: Path,
    timeout_s: float = 90.0,
    heap: str = "512m",
    sasl_users: Mapping[str, str] | None = None,
) -> BrokerInfo:
    """Start a broker on 127.0.0.1:``port`` keeping its data in ``data_dir``; return it.
    ``sasl_users`` (name -> password): clients must log in with SASL/PLAIN as one of them.

    A broker already running from ``data_dir`` is returned as is (even if on another port).
    """
    data_dir = data_dir.resolve()
    running = broker_status(data_dir)
    if running is not None:
        return running
    _check_free(port)
    java, libs = _java_and_jars(kafka_dir, version)
    data_dir.mkdir(parents=True, exist_ok=True)
    cport = free_port()
    config = _write_config(data_dir, port, cport, sasl_users=sasl_users)
    _format(java, libs, data_dir, config, None)
    info = _launch(java, libs, config, ports=(port, cport), heap=heap)
    _wait_started(info, timeout_s)
    return info


def start_cluster(
    kafka_dir: Path,
    version: str,
    *,
    ports: list[int],
    data_dir: Path,
    timeout_s: float = 180.0,
    heap: str = "384m",
) -> list[BrokerInfo]:
    """Start ``len(ports)`` brokers on 127.0.0.1 as one KRaft cluster (each node broker and
    controller, in ``data_dir/node-<id>``); return them, node 1 first. Nodes already running
    from their folders are kept; the others are started (a restarted node rejoins)."""
    data_dir = data_dir.resolve()
    if len(ports) < 2:
        raise BrokerError("a cluster needs at least 2 brokers: use `storywatch kafka start`")
    nodes = [data_dir / f"node-{i}" for i in range(1, len(ports) + 1)]
    running = [broker_status(node) for node in nodes]
    java, libs = _java_and_jars(kafka_dir, version)
    cports = [
        info.controller_port if info else _recorded_controller_port(node) or free_port()
        for node, info in zip(nodes, running, strict=True)
    ]
    voters = ",".join(f"{i}@{HOST}:{c}" for i, c in enumerate(cports, start=1))
    cluster_file = data_dir / "cluster.id"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not cluster_file.exists():
        cluster_file.write_text(_cluster_id() + "\n", encoding="utf-8")
    cluster_id = cluster_file.read_text(encoding="utf-8").strip()
    started: list[BrokerInfo] = []
    for node_id, (node, port, cport, info) in enumerate(
        zip(nodes, ports, cports, running, strict=True), start=1
    ):
        if info is not None:
            started.append(info)
            continue
        _check_free(port)
        node.mkdir(parents=True, exist_ok=True)
        config = _write_config(node, port, cport, node_id=node_id, voters=voters)
        _format(java, libs, node, config, cluster_id)
        started.append(_launch(java, libs, config, ports=(port, cport), heap=heap))
    # A node serves once a majority of controllers answer: launch all first, then wait.
    for info in started:
        _wait_started(info, timeout_s)
    return started


def cluster_status(data_dir: Path) -> list[BrokerInfo | None]:
    """Each node of the cluster in ``data_dir`` (None where it is not running); [] if
    ``data_dir`` holds no cluster."""
    nodes = sorted(data_dir.glob("node-*"), key=lambda p: int(p.name.split("-")[1]))
    return [broker_status(node) for node in nodes]


def stop_cluster(data_dir: Path, timeout_s: float = 30) -> int:
    """Stop every running node of the cluster in ``data_dir``; returns how many were."""
    nodes = sorted(data_dir.glob("node-*"))
    return sum(stop_broker(node, timeout_s) for node in nodes)


def _recorded_controller_port(node: Path) -> int | None:
    """The controller port a stopped node was configured with (it must rejoin on it)."""
    try:
        text = (node / "server.properties").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"CONTROLLER://[^:]+:(\d+)", text)
    return int(found.group(1)) if found else None


def _check_free(port: int) -> None:
    if _port_taken(port):
        raise BrokerError(
            f"port {port} on {HOST} is already in use by another program: "
            "stop it or pick another port with --port"
        )


def _java_and_jars(kafka_dir: Path, version: str) -> tuple[str, Path]:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java not found: install a Java 17+ runtime to run the Kafka broker")
    return java, ensure_jars(kafka_dir, version)


def _format(java: str, libs: Path, data_dir: Path, config: Path, cluster_id: str | None) -> None:
    """Format the node's storage once (a node that has data keeps it)."""
    if (data_dir / "logs" / "meta.properties").exists():
        return
    tool = [java, *JVM_FLAGS, "-cp", str(libs / "*"), "kafka.tools.StorageTool", "format"]
    args = [*tool, "-t", cluster_id or _cluster_id(), "-c", str(config)]
    fmt = subprocess.run(args, capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        last = " | ".join((fmt.stdout + fmt.stderr).strip().splitlines()[-5:])
        raise BrokerError(f"formatting Kafka storage in {data_dir} failed: {last}")


def _launch(
    java: str, libs: Path, config: Path, *, ports: tuple[int, int], heap: str
) -> BrokerInfo:
    """Start the JVM of the node whose ``server.properties`` is ``config``, detached."""
    data_dir = config.parent
    port, cport = ports
    log = data_dir / "broker.log"
    logging = [f"-Dlog4j.configuration=file:{data_dir / 'log4j.properties'}"]
    cmd = [java, f"-Xmx{heap}", f"-Xms{heap}", *JVM_FLAGS, *logging, f"-Dkafka.logs.dir={data_dir}"]
    cmd += ["-cp", str(libs / "*"), "kafka.Kafka", str(config)]
    # Why the `sh ... &`: the JVM is re-parented away from us, so it is never our zombie and
    # outlives this process; sh prints its pid and exits at once.
    detach = ["sh", "-c", 'exec "$@" </dev/null >&2 & echo $!', "sh"]
    with log.open("wb") as out:
        spawn = subprocess.run(
            [*detach, *cmd], stdout=subprocess.PIPE, stderr=out, start_new_session=True, check=False
        )
    try:
        pid = int(spawn.stdout.decode().strip())
    except ValueError:
        raise BrokerError(f"could not start java: {_tail(log)}") from None
    (data_dir / "broker.pid").write_text(f"{pid}\n", encoding="utf-8")
    return BrokerInfo(port, cport, data_dir, pid)


def _wait_started(info: BrokerInfo, timeout_s: float) -> None:
    log = info.data_dir / "broker.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if STARTED_MESSAGE in log.read_text(encoding="utf-8", errors="replace"):
            return
        if not _alive(info.pid):
            (info.data_dir / "broker.pid").unlink(missing_ok=True)
            raise BrokerError(f"the Kafka broker exited during startup; see {log}:\n{_tail(log)}")
        time.sleep(0.25)
    stop_broker(info.data_dir)
    raise BrokerError(
        f"the Kafka broker did not start within {timeout_s:.0f}s; see {log}:\n{_tail(log)}"
    )


def stop_broker(data_dir: Path, timeout_s: float = 30) -> bool:
    """Stop the broker recorded in ``data_dir``; False if none was running."""
    info = broker_status(data_dir)
    if info is None:
        (data_dir / "broker.pid").unlink(missing_ok=True)
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            if os.getpgid(info.pid) == os.getpgrp():  # never signal our own group
                os.kill(info.pid, sig)
            else:
                os.killpg(os.getpgid(info.pid), sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(info.pid):
            break
    else:
        raise BrokerError(f"could not stop the Kafka broker (pid {info.pid}): kill it by hand")
    (data_dir / "broker.pid").unlink(missing_ok=True)
    return True
