"""The `storywatch` command line as a user drives it: help, one-line errors, offline mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from config.settings import Settings
from streams.cli import main
from streams.engine.pairs import derive_pairs
from streams.kafka.local import free_port
from tests.conftest import SAMPLE

COMMANDS = [
    [],
    ["kafka"],
    ["kafka", "start"],
    ["kafka", "stop"],
    ["kafka", "status"],
    ["kafka", "topics"],
    ["worker"],
    ["produce"],
    ["watch"],
    ["cluster"],
    ["eval"],
    ["demo"],
    ["subscriptions"],
    ["subscriptions", "add"],
    ["subscriptions", "list"],
    ["subscriptions", "show"],
    ["subscriptions", "rm"],
    ["subscriptions", "test"],
    ["subscriptions", "deliveries"],
]


def _storywatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "storywatch")
def test_help_on_every_command(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_broker_is_one_clear_line() -> None:
    port = str(free_port())
    line = _one_line_error(
        _storywatch("produce", str(SAMPLE), env={"STORYWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    )
    assert f"127.0.0.1:{port}" in line and "storywatch kafka start" in line


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    line = _one_line_error(_storywatch("eval", str(tmp_path / "nope.jsonl")))
    assert "nope.jsonl" in line and "JSON-lines" in line


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "title": "ok"}\n{oops\n')
    line = _one_line_error(_storywatch("cluster", str(bad), "--out", str(tmp_path / "o.jsonl")))
    assert "bad.jsonl:2" in line


def test_bad_setting_names_the_variable() -> None:
    line = _one_line_error(
        _storywatch("kafka", "status", env={"STORYWATCH_WEB_PORT": "not-a-port"})
    )
    assert "STORYWATCH_WEB_PORT" in line


def test_kafka_status_without_broker(tmp_path: Path) -> None:
    result = _storywatch("kafka", "status", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "storywatch kafka start" in result.stdout


@pytest.mark.model
def test_cluster_and_eval_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:60]]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    result = runner.invoke(main, ["cluster", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assigned = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["id"] for a in assigned] == [r["id"] for r in rows]
    assert all(set(a) == {"id", "story_id", "dup_group_id"} for a in assigned)
    assert 1 < len({a["story_id"] for a in assigned}) < len(rows)

    result = runner.invoke(main, ["eval", str(data)])
    assert result.exit_code == 0, result.output
    table = dict(line.split("  ", 1) for line in result.output.splitlines() if "  " in line)
    table = {k.strip(): v.strip() for k, v in table.items()}
    for key in ("B-cubed precision", "B-cubed recall", "B-cubed F1", "AMI", "ARI", "articles/s"):
        assert 0.0 <= float(table[key]) <= (1.0 if key != "articles/s" else 1e6), key
    assert float(table["B-cubed F1"]) > 0.3
    assert table["articles"] == "60"

    # Judged pairs: eval's pair accuracy is the share of pairs that `cluster --out` puts
    # together exactly when they are judged the same story.
    pairs = derive_pairs(rows, per_kind=20, seed=3)
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(
        "".join(json.dumps({"a": p.a, "b": p.b, "same_story": p.same_story}) + "\n" for p in pairs)
    )
    story_of = {a["id"]: a["story_id"] for a in assigned}
    right = sum((story_of[p.a] == story_of[p.b]) == p.same_story for p in pairs)
    result = runner.invoke(main, ["eval", str(data), "--pairs", str(pairs_file)])
    assert result.exit_code == 0, result.output
    table = dict(line.split("  ", 1) for line in result.output.splitlines() if "  " in line)
    table = {k.strip(): v.strip() for k, v in table.items()}
    assert float(table["pair accuracy"]) == pytest.approx(right / len(pairs), abs=1e-4)
    assert table["pairs"].startswith(f"{len(pairs)} ")
    assert 0.0 <= float(table["different-events precision"]) <= 1.0

    # With merges on, eval adds the final scores, and cluster --out writes final story ids:
    # as many distinct ids as eval's final story count.
    merging = {"STORYWATCH_MERGE_BRIDGES": "1", "STORYWATCH_MERGE_SCORE": "0.5"}
    monkeypatch.setattr("streams.cli.offline.load_settings", lambda: Settings(**_lower(merging)))
    result = runner.invoke(main, ["eval", str(data)])
    assert result.exit_code == 0, result.output
    table = dict(line.split("  ", 1) for line in result.output.splitlines() if "  " in line)
    table = {k.strip(): v.strip() for k, v in table.items()}
    assert int(table["merges"]) >= 1  # two of the sample's stories bridge at 0.5
    assert 0.0 <= float(table["final B-cubed F1"]) <= 1.0
    result = runner.invoke(main, ["cluster", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    final_ids = {json.loads(line)["story_id"] for line in out.read_text().splitlines()}
    assert len(final_ids) == int(table["final stories"])
    assert int(table["final stories"]) == int(table["stories (gold)"].split()[0]) - int(
        table["merges"]
    )


def _lower(env: dict[str, str]) -> dict[str, Any]:
    return {k.removeprefix("STORYWATCH_").lower(): v for k, v in env.items()}


def test_missing_pairs_file_is_one_clear_line(tmp_path: Path) -> None:
    line = _one_line_error(_storywatch("eval", str(SAMPLE), "--pairs", str(tmp_path / "p.jsonl")))
    assert "p.jsonl" in line and "same_story" in line
