"""`storywatch demo` as `make demo` runs it, on the session's broker, until the stream is done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka.local import free_port
from tests.conftest import SAMPLE

pytestmark = pytest.mark.kafka


def test_demo_shows_stories_forming_and_alerts(kafka_bootstrap: str, tmp_path: Path) -> None:
    sample = tmp_path / "sample.jsonl"
    sample.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")}
    env.update(
        {
            "STORYWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "STORYWATCH_WEB_PORT": str(free_port()),
            "STORYWATCH_DATA_DIR": str(tmp_path / "state"),
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "demo",
            "--file",
            str(sample),
            "--rate",
            "50",
            "--exit-when-done",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert f"Dashboard:  http://127.0.0.1:{env['STORYWATCH_WEB_PORT']}/" in out
    assert "storywatch watch --topic stories-demo-" in out
    events = [line for line in out.splitlines() if " NEW " in line or " JOINED " in line]
    assert len(events) == 60 - out.count(" DUP ")
    assert any(" JOINED " in line and "[story: " in line for line in events)
    assert "*** ALERT io.storywatch.story.emerging" in out
    assert "the stream is done: " in out
