"""Run `storywatch worker` as a subprocess with its own topics, group and web port: what the
integration tests and the benchmarks (bench/) start, so the benchmarks need nothing from tests/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.local import free_port

__all__ = ["TOPIC_NAMES", "WorkerRun"]

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
                    with urllib.request.urlopen(f"{self.url}/api/stories", timeout=2):  # noqa: S310 (our http://127.0.0.1)
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
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
