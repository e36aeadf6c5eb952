"""The local Kafka broker: a port clash fails clearly; a real broker starts, serves and stops."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from streams.exceptions import BrokerError
from streams.kafka.local import (
    BrokerInfo,
    broker_status,
    free_port,
    port_is_open,
    start_broker,
    stop_broker,
)


def test_start_broker_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        # An empty kafka_dir: the port is checked before any jars are needed.
        with pytest.raises(BrokerError, match=rf"port {port}.*in use.*--port"):
            start_broker(tmp_path / "jars", "3.9.1", port=port, data_dir=tmp_path / "data")
    assert not (tmp_path / "jars").exists()
    assert broker_status(tmp_path / "data") is None
    assert stop_broker(tmp_path / "data") is False


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerInfo]:
    settings = Settings()
    data_dir = tmp_path / "broker"
    info = start_broker(
        settings.kafka_dir, settings.kafka_version, port=free_port(), data_dir=data_dir
    )
    try:
        yield info
    finally:
        stop_broker(data_dir)


@pytest.mark.kafka
def test_broker_round_trip(broker: BrokerInfo) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert port_is_open("127.0.0.1", broker.port)
    assert broker_status(broker.data_dir) == broker
    # Starting again from the same data folder finds the running broker.
    assert (
        start_broker(Path("/nonexistent"), "0", port=broker.port, data_dir=broker.data_dir)
        == broker
    )

    topic = f"t-{uuid.uuid4().hex[:12]}"  # auto-created on first produce
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        producer.send(topic, key=b"k", value=b"hello storywatch").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id="test",
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert (record.key, record.value) == (b"k", b"hello storywatch")

    assert stop_broker(broker.data_dir) is True
    assert broker_status(broker.data_dir) is None
    assert not (broker.data_dir / "broker.pid").exists()
    assert not port_is_open("127.0.0.1", broker.port)
    assert stop_broker(broker.data_dir) is False
