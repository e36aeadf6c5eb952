"""Run `storywatch worker` as a subprocess with its own topics, group and web port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.local import free_port

TOPIC_NAMES = (
    "articles",
    "dlq",
    "embedded",
    "stories",
    "alerts",
    "deliveries",
    "alerts_dlq",
    "subscriptions",
)


@dataclass
class WorkerRun:
    """One isolated pipeline: random topic names and app id, so tests never share state."""

    bootstrap: str
    workdir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    settings: dict[str, str] = field(default_factory=dict)  # extra STORYWATCH_* variables

    def topic(self, name: str) -> str:
        return f"{name}-{self.run_id}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")}
        env.update(
            {
                "STORYWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
                "STORYWATCH_APP_ID": f"storywatch-test-{self.run_id}",
                "STORYWATCH_WEB_PORT": str(self.web_port),
                "STORYWATCH_DATA_DIR": str(self.workdir / "state"),
            }
        )
        env.update({f"STORYWATCH_TOPIC_{n.upper()}": self.topic(n) for n in TOPIC_NAMES})
        env.update(self.settings)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self, timeout_s: float = 180.0) -> None:
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.log()}")
            if "Worker]: Ready" in self.log():
                try:
                    with urllib.request.urlopen(f"{self.url}/api/stories", timeout=2):
                        return
                except urllib.error.HTTPError:
                    return  # it answers (401: reads need a token on this worker)
                except OSError:
                    pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def holds(self, topic: str) -> bool:
        """Whether the latest partition assignment in the log gives this worker ``topic``."""
        log = self.log()
        last = log.rfind("Setting newly assigned partitions")
        if last < 0:
            return False
        table = log[last:].split("\n\n", 1)[0]
        return any(line.strip("| ").startswith(topic + " ") for line in table.splitlines())

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or the OOM killer stops it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def peak_rss_mib(self) -> float:
        """The running worker's peak resident memory (VmHWM), in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def metric(self, name: str, **labels: str) -> float:
        """The value of the sample ``name`` with exactly ``labels`` (none: unlabelled) on
        /metrics; fails when the worker does not export it."""
        _, text = self.http("/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"{name} {labels} is not on {self.url}/metrics")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def http(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return response.status, response.read().decode()


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float) -> list[Any]:
    """Read JSON values from the start of ``topic`` until ``expect`` arrived or time is up."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        value_deserializer=json.loads,
    )
    values: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expect and time.monotonic() < deadline:
            for message in consumer:
                values.append(message.value)
                if len(values) >= expect:
                    break
    finally:
        consumer.close()
    return values


def read_to_end(
    bootstrap: str, topic: str, *, timeout_s: float = 120.0, keyed: bool = False
) -> list[Any]:
    """Every JSON value ``topic`` holds now (``keyed``: ``(key as text, value)`` pairs); see
    ``records_to_end``."""
    records = records_to_end(bootstrap, topic, timeout_s=timeout_s)
    if keyed:
        return [(r.key and r.key.decode(), r.value) for r in records]
    return [r.value for r in records]


def records_to_end(
    bootstrap: str, topic: str, *, timeout_s: float = 120.0, decode: bool = True
) -> list[ConsumerRecord]:
    """Every record ``topic`` holds now (key, offset, timestamp, the value JSON-decoded, or
    its bytes as written when not ``decode``):
    reads until each partition's position reaches the end offset taken at the start. A
    deadline that passes first FAILS (a read cut short by a slow machine must not pass for
    records the pipeline lost)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        value_deserializer=json.loads if decode else None,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    values: list[ConsumerRecord] = []
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s}s"
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(batch)
    finally:
        consumer.close()
    return values


def broker_lag(run: WorkerRun, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """End offset minus the group's committed offset, asked of the broker directly."""
    admin = KafkaAdminClient(bootstrap_servers=run.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=run.bootstrap)
    try:
        group = run.env["STORYWATCH_APP_ID"]
        committed = admin.list_group_offsets(group)[group]
        tps = [TopicPartition(t, p) for t, p in partitions]
        ends = consumer.end_offsets(tps)
        return {
            (tp.topic, tp.partition): ends[tp] - (committed[tp].offset if tp in committed else 0)
            for tp in tps
        }
    finally:
        admin.close()
        consumer.close()
