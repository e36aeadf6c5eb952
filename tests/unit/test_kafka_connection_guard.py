"""Every Kafka client is built by streams/kafka/connection.py: a client constructed anywhere
else in the product (or a Faust app given its broker elsewhere) fails this test, so no future
command can skip TLS or the login."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The product and its benches; tests build raw clients on purpose (the negative tests).
SCANNED = ("streams", "agents", "config", "bench")
CONNECTION_MODULE = Path("streams/kafka/connection.py")
APP_MODULE = Path("streams/pipeline.py")  # the composition root builds the Faust app
CLIENT_CLASSES = frozenset(
    {
        "KafkaProducer",
        "KafkaConsumer",
        "KafkaAdminClient",
        "KafkaClient",
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaClient",
        "AIOKafkaAdminClient",
        "SASLCredentials",
        "SSLCredentials",
        "OAuthCredentials",
        "GSSAPICredentials",
    }
)
# Keyword arguments only a Kafka client (or a Faust app) takes.
CLIENT_KEYWORDS = frozenset(
    {"bootstrap_servers", "security_protocol", "sasl_mechanism", "ssl_context", "broker"}
)


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def construction_sites(source: str, path: Path) -> list[str]:
    """``path:line what`` for each Kafka client built in ``source`` outside the layer."""
    if path == CONNECTION_MODULE:
        return []
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in CLIENT_CLASSES and alias.asname:
                    found.append(f"{path}:{node.lineno} imports {alias.name} as {alias.asname}")
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        if name in CLIENT_CLASSES:
            found.append(f"{path}:{node.lineno} builds {name}")
        for keyword in node.keywords:
            if keyword.arg not in CLIENT_KEYWORDS:
                continue
            if keyword.arg == "broker" and path == APP_MODULE:
                continue  # the Faust app: its credentials are checked below
            found.append(f"{path}:{node.lineno} passes {keyword.arg}= to {name}")
    return found


def test_no_kafka_client_is_built_outside_the_connection_layer() -> None:
    found = []
    for package in SCANNED:
        for file in sorted((ROOT / package).rglob("*.py")):
            relative = file.relative_to(ROOT)
            found += construction_sites(file.read_text(encoding="utf-8"), relative)
    assert not found, (
        "Kafka clients built outside streams/kafka/connection.py (they would skip TLS and the "
        "login): build them with KafkaConnection.from_settings(settings.kafka).producer()/"
        ".consumer()/.admin()/.aio_consumer():\n" + "\n".join(found)
    )


def test_the_faust_app_takes_its_credentials_from_the_connection() -> None:
    tree = ast.parse((ROOT / APP_MODULE).read_text(encoding="utf-8"))
    credentials = [
        keyword.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "broker_credentials"
    ]
    assert len(credentials) == 1
    value = credentials[0]
    assert isinstance(value, ast.Call) and _called_name(value) == "faust_credentials"


def test_the_scan_catches_a_new_construction_site() -> None:
    """The guard itself can fail: each way of building a client outside the layer is found."""
    snippet = (
        "from kafka import KafkaProducer\n"
        "from aiokafka import AIOKafkaConsumer as Reader\n"
        "import kafka, faust\n"
        "p = KafkaProducer(bootstrap_servers='h:1')\n"
        "c = kafka.KafkaConsumer('t')\n"
        "r = Reader(bootstrap_servers='h:1')\n"
        "a = faust.App('x', broker='kafka://h:1')\n"
        "s = faust.SASLCredentials(username='u', password='p')\n"
    )
    found = construction_sites(snippet, Path("streams/new_command.py"))
    assert len(found) == 7, found
    assert construction_sites(snippet, CONNECTION_MODULE) == []
