"""Backtest speed: `storywatch replay` vs the live pipeline, side by side in one run.

Why: a backtest re-reads `articles-embedded` (article + stored vector), so it runs at
clustering speed, not model speed. Goals (issue 13): the backtest's articles/s >= 20x the
live pipeline's on the same machine, and the whole `storywatch replay` command, start-up
included, >= 10x faster than the live pipeline took for the same articles.

One run, one broker (temp dir, free port), one worker subprocess (isolated topics):
1. live: a few warm-up headlines (the worker loads its model on the first batch), then N
   headlines produced at once; the clock runs from the first send to the last story event
   read back (the same measurement as bench/pipeline.py, whose helpers this reuses);
2. backtest, in process: ``run_replay`` over exactly the window of those N articles
   (group-free read of `articles-embedded` + the engine + the alert rule, no files);
   articles/s = articles / its wall time (reading from Kafka included);
3. the command: ``python -m streams.cli replay --from .. --to .. --out DIR`` as a
   subprocess, wall time from spawn to exit (interpreter, imports, Kafka metadata, files).

Run: .venv/bin/python bench/replay.py [--articles N] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import load_rows, story_consumer, wait_events  # noqa: E402

from config.settings import Settings  # noqa: E402
from streams.engine.emerging import EmergingRule  # noqa: E402
from streams.kafka.local import free_port, start_broker, stop_broker  # noqa: E402
from streams.producer import produce_rows  # noqa: E402
from streams.replay.run import ReplayRequest, run_replay  # noqa: E402
from streams.time_ranges import TimeRange, format_ms  # noqa: E402
from streams.worker_run import WorkerRun  # noqa: E402

# Why 32 warm-up rows: one embedding batch, so the worker's model is loaded before the clock.
_WARM = 32


def main() -> None:  # noqa: PLR0915 - one straight-line measurement, step by step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=3000, help="headlines measured")
    parser.add_argument("--quick", action="store_true", help="500 headlines")
    parser.add_argument("--profile", action="store_true", help="profile the backtest")
    args = parser.parse_args()
    count = 500 if args.quick else args.articles
    rows = load_rows("headlines")
    warm, rows = rows[:_WARM], rows[_WARM : _WARM + count]
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        data = Path(tmp) / "kafka"
        info = start_broker(base.kafka_dir, base.kafka_version, port=free_port(), data_dir=data)
        worker = WorkerRun(info.bootstrap, Path(tmp) / "worker")
        try:
            worker.start()
            consumer = story_consumer(info.bootstrap, worker.topic("stories"))
            produce_rows(warm, info.bootstrap, worker.topic("articles"))
            wait_events(consumer, {r["id"] for r in warm}, 300)
            time.sleep(0.01)
            window_start = int(time.time() * 1000)
            started = time.perf_counter()
            produce_rows(rows, info.bootstrap, worker.topic("articles"))
            wait_events(consumer, {r["id"] for r in rows}, 1800)
            live_s = time.perf_counter() - started
            consumer.close()
            window = TimeRange(window_start, int(time.time() * 1000) + 1)

            settings = Settings(
                kafka_bootstrap=info.bootstrap,
                topic_embedded=worker.topic("embedded"),
                topic_articles=worker.topic("articles"),
                topic_stories=worker.topic("stories"),
                topic_alerts=worker.topic("alerts"),
            )
            request = ReplayRequest(
                settings,
                settings,
                window,
                [EmergingRule.from_settings(settings.alerts)],
                None,
                tty=False,
            )
            profile = cProfile.Profile() if args.profile else None
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            summary, _ = run_replay(request, lambda _: None)
            backtest_s = time.perf_counter() - started
            if profile is not None:
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
            assert summary["articles_read"] == len(rows), summary["articles_read"]

            out = Path(tmp) / "out"
            command = [
                sys.executable, "-m", "streams.cli", "replay",
                "--from", format_ms(window.start_ms or 0),
                "--to", format_ms((window.end_ms or 0) + 1000),
                "--out", str(out),
            ]  # fmt: skip
            started = time.perf_counter()
            done = subprocess.run(
                command, env=worker.env, cwd=ROOT, capture_output=True, text=True, check=False
            )
            command_s = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            read = json.loads((out / "summary.json").read_text())["articles_read"]
            if read != len(rows):
                got = {json.loads(x)["article_id"] for x in (out / "stories.jsonl").open()}
                missing = [r["id"] for r in rows if r["id"] not in got]
                raise SystemExit(f"{read} read, missing {missing[:20]}:\n{done.stderr}")
        finally:
            worker.stop()
            stop_broker(data)
    live_rate = len(rows) / live_s
    result = {
        "articles": len(rows),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "date": format_ms(int(time.time() * 1000)),
        "live_s": round(live_s, 2),
        "live_articles_per_s": round(live_rate, 1),
        "backtest_s": round(backtest_s, 2),
        "backtest_articles_per_s": round(len(rows) / backtest_s, 1),
        "backtest_speedup": round(live_s / backtest_s, 1),
        "command_s": round(command_s, 2),
        "command_speedup": round(live_s / command_s, 1),
    }
    print(json.dumps(result, indent=2))
    print(
        f"\nlive pipeline {live_rate:.0f} articles/s | backtest "
        f"{result['backtest_articles_per_s']:.0f} articles/s ({result['backtest_speedup']}x, "
        f"goal >= 20x) | `storywatch replay` {command_s:.1f} s vs live {live_s:.1f} s "
        f"({result['command_speedup']}x, goal >= 10x)"
    )


if __name__ == "__main__":
    main()
