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
from dataclasses import dataclass, field
from pathlib import Path

from streams.exceptions import BrokerError
from streams.kafka.certs import TlsFiles

__all__ = [
    "BrokerInfo",
    "BrokerSecurity",
    "ClientListener",
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


@dataclass(frozen=True)
class ClientListener:
    """One listener clients connect to: its Kafka listener name (``SSL``, ``MTLS``...), its
    security protocol and port; ``client_auth`` asks for a client certificate (mutual TLS);
    ``keystore`` gives it a PEM keystore of its own (the tests' expired or wrong-host
    certificates) instead of the broker's; ``mechanisms`` limits the SASL mechanisms it
    offers."""

    name: str
    protocol: str
    port: int
    client_auth: bool = False
    keystore: Path | None = None
    mechanisms: tuple[str, ...] = ()  # SASL mechanisms offered here (none given: all three)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class BrokerSecurity:
    """A secured broker: its client listeners (the first one also carries the brokers' own
    traffic), the TLS files when a listener speaks TLS, and the SASL users (name ->
    password), who may log in with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""

    listeners: tuple[ClientListener, ...]
    tls: TlsFiles | None = None
    users: Mapping[str, str] = field(default_factory=dict)


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
        listeners = [item.split("://", 1) for item in props["listeners"].split(",")]
        ports = dict(listeners)
        client = next(address for name, address in listeners if name != "CONTROLLER")
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


_SAFE_NAME = r"[A-Za-z0-9._-]+"
# SCRAM users are written as SCRAM-SHA-256=[name=...,password=...]: none of ,[]=" or \\
_SCRAM_SAFE = r'[^,\[\]="\\\s]+'
_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _check_users(users: Mapping[str, str]) -> None:
    for name, password in users.items():
        if not re.fullmatch(_SAFE_NAME, name) or not re.fullmatch(_SCRAM_SAFE, password):
            raise BrokerError(
                f"SASL user {name!r}: use letters, digits, '.', '_' or '-' in the name, and "
                'no spaces or any of , [ ] = " \\ in the password'
            )


def _sasl_props(users: Mapping[str, str], listeners: list[ClientListener]) -> dict[str, str]:
    """SASL on the SASL listeners: ``users`` (name -> password) may log in with PLAIN (the
    passwords in the JAAS config) or SCRAM (stored when the storage is formatted); the
    brokers talk to each other with PLAIN as a generated user of their own."""
    broker_password = secrets.token_urlsafe(16)
    _check_users(users)
    accounts = {"broker": broker_password, **users}
    jaas = " ".join(f'user_{name}="{password}"' for name, password in accounts.items())
    props = {
        "sasl.enabled.mechanisms": ",".join(("PLAIN", *_SCRAM)),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
    }
    for listener in listeners:
        prefix = f"listener.name.{listener.name.lower()}"
        props[f"{prefix}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="broker" password="{broker_password}" {jaas};'
        )
        for mechanism in _SCRAM:
            props[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if listener.mechanisms:
            props[f"{prefix}.sasl.enabled.mechanisms"] = ",".join(listener.mechanisms)
    return props


def _tls_props(tls: TlsFiles, listeners: list[ClientListener]) -> dict[str, str]:
    """TLS from PEM files: the broker's keystore (key + chain) and the CA it trusts (for the
    brokers' own connections and for client certificates)."""
    props = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca.cert),
    }
    for listener in listeners:
        prefix = f"listener.name.{listener.name.lower()}"
        props[f"{prefix}.ssl.client.auth"] = "required" if listener.client_auth else "none"
        if listener.keystore is not None:
            props[f"{prefix}.ssl.keystore.type"] = "PEM"
            props[f"{prefix}.ssl.keystore.location"] = str(listener.keystore)
    return props


def _scram_format_args(security: BrokerSecurity | None) -> list[str]:
    """``--add-scram`` arguments: every SASL user, with both SCRAM mechanisms."""
    if security is None or not any(item.sasl for item in security.listeners):
        return []
    _check_users(security.users)
    return [
        arg
        for name, password in security.users.items()
        for mechanism in _SCRAM
        for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]


def _write_config(
    data_dir: Path,
    port: int,
    cport: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    security: BrokerSecurity | None = None,
) -> Path:
    """One node's ``server.properties``. Alone (``voters`` None) it is its own quorum with
    replication 1; in a cluster every node is broker and controller, and each topic gets 3
    replicas of which 2 must have a write (``min.insync.replicas``) before it is acked.
    With ``security`` its client listeners are those (TLS, mutual TLS, SASL) instead of one
    PLAINTEXT listener on ``port``."""
    replicas = 1 if voters is None else min(3, voters.count("@"))
    min_isr = 1 if replicas < 3 else 2
    plain = ClientListener("PLAINTEXT", "PLAINTEXT", port)
    clients = list(security.listeners) if security else [plain]
    addresses = ",".join(f"{item.name}://{HOST}:{item.port}" for item in clients)
    protocols = ",".join(f"{item.name}:{item.protocol}" for item in clients)
    sasl = [item for item in clients if item.sasl]
    tls = [item for item in clients if item.tls]
    if tls and (security is None or security.tls is None):
        raise BrokerError("a TLS listener needs TLS files (BrokerSecurity.tls)")
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{cport}",
        "listeners": f"{addresses},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": addresses,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": clients[0].name,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{protocols}",
        **(_sasl_props(security.users, sasl) if security and sasl else {}),
        **(_tls_props(security.tls, tls) if security and security.tls and tls else {}),
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
    security: BrokerSecurity | None = None,
) -> BrokerInfo:
    """Start a broker on 127.0.0.1:``port`` keeping its data in ``data_dir``; return it.
    ``sasl_users`` (name -> password): clients must log in with SASL/PLAIN as one of them
    (a SASL_PLAINTEXT listener on ``port``). ``security``: these client listeners instead
    (the first on ``port``), with TLS and SCRAM users.

    A broker already running from ``data_dir`` is returned as is (even if on another port).
    """
    data_dir = data_dir.resolve()
    running = broker_status(data_dir)
    if running is not None:
        return running
    if sasl_users and security is None:
        security = BrokerSecurity(
            (ClientListener("SASL_PLAINTEXT", "SASL_PLAINTEXT", port),), users=sasl_users
        )
    if security is not None and security.listeners[0].port != port:
        raise BrokerError("the first client listener must be on the broker's port")
    for item in security.listeners if security else ():
        _check_free(item.port)
    _check_free(port)
    java, libs = _java_and_jars(kafka_dir, version)
    data_dir.mkdir(parents=True, exist_ok=True)
    cport = free_port()
    config = _write_config(data_dir, port, cport, security=security)
    _format(java, libs, data_dir, config, None, extra=_scram_format_args(security))
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


def _format(
    java: str,
    libs: Path,
    data_dir: Path,
    config: Path,
    cluster_id: str | None,
    *,
    extra: list[str] | None = None,
) -> None:
    """Format the node's storage once (a node that has data keeps it); ``extra``: more
    arguments (the SCRAM users to store)."""
    if (data_dir / "logs" / "meta.properties").exists():
        return
    tool = [java, *JVM_FLAGS, "-cp", str(libs / "*"), "kafka.tools.StorageTool", "format"]
    args = [*tool, "-t", cluster_id or _cluster_id(), "-c", str(config), *(extra or [])]
    fmt = subprocess.run(args, capture_output=True, text=True, check=False)
    if fmt.returncode != 0:
        last = " | ".join((fmt.stdout + fmt.stderr).strip().splitlines()[-5:])
        last = re.sub(r"password=[^\],]*", "password=***", last)  # never a SCRAM password
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
