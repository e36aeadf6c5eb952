"""Pipeline efficiency, naive-peer ratio and end-to-end latency of the real Kafka pipeline.

Why: embedding is the cost, so the pipeline (produce -> embed agent -> articles-embedded ->
cluster agent -> `stories`) should deliver nearly the raw model throughput (target >= 0.90 of
``Embedder.encode`` at the same batch size), beat a naive one-message-at-a-time consumer by
>= 5x, and keep p99 latency <= 2 s when not saturated.

Per kind (headlines: UCI titles; full articles: ECB+ "title. text"), in ONE run, side by side:
1. raw: ``Embedder.encode`` on the same texts in batches of settings.embed_batch_size;
2. pipeline: a real broker (``streams.kafka.local.start_broker``, temp dir, free port) and
   the real worker as a subprocess (``streams.worker_run.WorkerRun``, isolated
   topics). The worker loads the model lazily on its first batch, so a few warm-up articles
   (other rows) go through first and that cold start is reported apart. The clock starts
   when the first measured article is produced and stops when its last story event is read;
3. raw again (the two raw figures bracket the pipeline run: they show drift from the load);
4. naive peer: a plain kafka-python loop, in this process, that consumes the same articles
   one message at a time, encodes each alone (batch 1), runs the same ``StoryEngine`` and
   produces the story event (clock stops after the last event is flushed: its favour);
5. latency: other rows of the same file, produced with ``produce_rows(rate=...)`` at half the
   pipeline's measured articles/s; latency = the story event's arrival at this reader minus
   the article's Kafka produce timestamp (``produced_at`` in the event), p50/p95/p99 (until
   issue 13 the story event's own Kafka timestamp; it now carries the article's time);
6. the batching windows' share: the same latency rows, same rate, through a second worker
   whose batching waits are near zero (``SHORT_WINDOWS``); 1 - p50(short) / p50(default).

Run: .venv/bin/python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # the worker subprocess runs `python -m streams.cli` from here

from kafka import KafkaConsumer  # noqa: E402

from config.settings import Settings  # noqa: E402
from streams.engine.clustering import ClusterParams, StoryEngine  # noqa: E402
from streams.engine.embedding import Embedder, prefer_passive_threads  # noqa: E402
from streams.engine.offline import read_jsonl  # noqa: E402
from streams.engine.validation import article_from_mapping, parse_article  # noqa: E402
from streams.kafka.connection import KafkaConnection  # noqa: E402
from streams.kafka.local import free_port, start_broker, stop_broker  # noqa: E402
from streams.producer import produce_rows  # noqa: E402
from streams.worker_run import WorkerRun  # noqa: E402

prefer_passive_threads()  # the raw baseline runs the model as the worker does (before torch)
import torch  # noqa: E402

UCI = Path(__file__).resolve().parents[1] / "data" / "uci-headlines-dev.jsonl"
UCI_FALLBACK = ROOT / "streams/samples/uci-headlines-sample.jsonl"
ECB = Path(__file__).resolve().parents[1] / "data" / "ecbplus-dev.jsonl"
SETTINGS = Settings()
BATCH = SETTINGS.embed_batch_size
DEFAULT_THREADS = torch.get_num_threads()  # before any Embedder(threads=...) changes it
# STORYWATCH_* settings for the workers (and the naive peer's model): --backend/--max-tokens.
WORKER_SETTINGS: dict[str, str] = {}


def load_rows(kind: str) -> list[dict]:
    """Valid rows without the gold label (never shown to the engine)."""
    path = (UCI if UCI.exists() else UCI_FALLBACK) if kind == "headlines" else ECB
    return [{k: v for k, v in r.items() if k != "label"} for r in read_jsonl(path)]


def texts_of(rows: list[dict]) -> list[str]:
    return [article_from_mapping(r).embed_text(SETTINGS.embed_max_chars) for r in rows]


def use_threads(embedder: Embedder) -> None:
    """torch has one process-wide thread pool: give it the embedder's count (or the default)
    before timing that embedder."""
    torch.set_num_threads(embedder.threads or DEFAULT_THREADS)


def raw_rate(embedder: Embedder, texts: list[str]) -> float:
    """texts/s of Embedder.encode in consecutive batches of BATCH."""
    use_threads(embedder)
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        embedder.encode(texts[start : start + BATCH])
    return len(texts) / (time.perf_counter() - started)


_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``, from /proc."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended between listing and reading
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def cpu_snapshot(broker_pid: int, worker_pid: int) -> dict[str, float]:
    """CPU seconds so far: the broker JVM, the worker's event loop (its main thread), the
    worker's other threads (the model: the encode thread and torch's pool), this process."""
    worker = thread_cpu(worker_pid)
    loop = worker.pop(worker_pid, 0.0)
    return {
        "broker": sum(thread_cpu(broker_pid).values()),
        "worker_loop": loop,
        "worker_model": sum(worker.values()),
        "bench": sum(thread_cpu(os.getpid()).values()),
    }


def story_consumer(bootstrap: str, topic: str) -> KafkaConsumer:
    consumer: KafkaConsumer = KafkaConnection.of(bootstrap).consumer(
        group_id=None, auto_offset_reset="earliest"
    )
    consumer.subscribe([topic])
    consumer.poll(timeout_ms=1000)  # join + first metadata before any clock starts
    return consumer


def wait_events(consumer: KafkaConsumer, ids: set[str], timeout_s: float) -> dict[str, tuple]:
    """Read story events until every article id in ``ids`` has one; returns
    id -> (story event Kafka timestamp s, article produce timestamp s, local read time)."""
    got: dict[str, tuple] = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(ids) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            now = time.time()
            for msg in records:
                event = json.loads(msg.value)
                if event["article_id"] in ids:
                    got[event["article_id"]] = (msg.timestamp / 1000, event["produced_at"], now)
    if len(got) < len(ids):
        raise RuntimeError(f"only {len(got)}/{len(ids)} story events within {timeout_s:.0f}s")
    return got


def pipeline_run(
    bootstrap: str,
    broker_pid: int,
    workdir: Path,
    kind: str,
    *,
    rows: list[dict],
    warm: list[dict],
    late: list[dict],
    embedder: Embedder,
    backend: Embedder | None,
) -> dict:
    """``embedder``: sentence-transformers (torch), the baseline the issue defines;
    ``backend``: the worker's other backend / token limit, also timed raw when given."""
    texts = texts_of(rows)
    out: dict = {"kind": kind, "articles": len(rows)}
    out["raw_before"] = raw_rate(embedder, texts)
    if backend is not None:
        out["raw_backend_before"] = raw_rate(backend, texts)
    worker = WorkerRun(bootstrap, workdir / kind, settings=WORKER_SETTINGS)
    try:
        started = time.perf_counter()
        worker.start()
        out["worker_start_s"] = time.perf_counter() - started
        consumer = story_consumer(bootstrap, worker.topic("stories"))
        # Warm-up: the worker loads its model on the first batch.
        started = time.perf_counter()
        produce_rows(warm, bootstrap, worker.topic("articles"))
        wait_events(consumer, {r["id"] for r in warm}, 300)
        out["cold_first_batch_s"] = time.perf_counter() - started

        assert worker.process is not None
        cpu_before = cpu_snapshot(broker_pid, worker.process.pid)
        started = time.perf_counter()
        produce_rows(rows, bootstrap, worker.topic("articles"))
        wait_events(consumer, {r["id"] for r in rows}, 600)
        elapsed = time.perf_counter() - started
        out["pipeline"] = len(rows) / elapsed
        cpu_after = cpu_snapshot(broker_pid, worker.process.pid)
        # CPU milliseconds per article by whom, and the share of the cores' time each took
        for who, before in cpu_before.items():
            spent = cpu_after[who] - before
            out[f"cpu_ms_{who}"] = 1000 * spent / len(rows)
            out[f"cpu_share_{who}"] = spent / (elapsed * (os.cpu_count() or 1))
        cpu_started = time.process_time()
        out["raw_after"] = raw_rate(embedder, texts)
        out["cpu_ms_raw_encode"] = 1000 * (time.process_time() - cpu_started) / len(rows)
        if backend is not None:
            out["raw_backend_after"] = raw_rate(backend, texts)

        rate = out["pipeline"] / 2
        out["latency_rate"] = rate
        out["latency_articles"] = len(late)
        out.update(measure_latency(bootstrap, worker, consumer, late, rate))
        consumer.close()
    finally:
        worker.stop()
    return out


def measure_latency(
    bootstrap: str, worker: WorkerRun, consumer: KafkaConsumer, rows: list[dict], rate: float
) -> dict:
    """Produce ``rows`` at ``rate``/s; percentiles of the story event's arrival here (read
    time) - the article's produce time. (Story events carry the article's Kafka time since
    issue 13, so their own timestamp no longer says when they were sent; the read time adds
    the broker's append and the fetch, a few ms.)"""
    produce_rows(rows, bootstrap, worker.topic("articles"), rate=rate)
    events = wait_events(consumer, {r["id"] for r in rows}, 300)
    lat = np.array([read - produced for _, produced, read in events.values()])
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"latency_p50": p50, "latency_p95": p95, "latency_p99": p99, "latency_max": lat.max()}


# Why these: the shortest waits that still let a batch form (10 ms for the model's batch,
# 5 ms for the cluster / alert stages), to see what the default windows add to latency.
SHORT_WINDOWS = {"STORYWATCH_EMBED_MAX_WAIT_S": "0.01", "STORYWATCH_STAGE_MAX_WAIT_S": "0.005"}


def short_windows_run(
    bootstrap: str, workdir: Path, *, warm: list[dict], late: list[dict], rate: float
) -> dict:
    """The same latency measurement on a worker whose batching windows are near zero."""
    worker = WorkerRun(bootstrap, workdir, settings={**WORKER_SETTINGS, **SHORT_WINDOWS})
    try:
        worker.start()
        consumer = story_consumer(bootstrap, worker.topic("stories"))
        produce_rows(warm, bootstrap, worker.topic("articles"))
        wait_events(consumer, {r["id"] for r in warm}, 300)
        result = measure_latency(bootstrap, worker, consumer, late, rate)
        consumer.close()
    finally:
        worker.stop()
    return {f"short_{k}": v for k, v in result.items()}


def naive_run(bootstrap: str, rows: list[dict], embedder: Embedder) -> float:
    """articles/s of a one-message-at-a-time consume -> encode -> cluster -> produce loop."""
    suffix = uuid.uuid4().hex[:8]
    src, dst = f"naive-articles-{suffix}", f"naive-stories-{suffix}"
    consumer = KafkaConnection.of(bootstrap).consumer(group_id=None, auto_offset_reset="earliest")
    consumer.subscribe([src])
    consumer.poll(timeout_ms=1000)
    producer = KafkaConnection.of(bootstrap).producer(linger_ms=5, acks="all")
    producer.send(dst, b"{}").get(timeout=30)  # create the output topic before the clock
    engine = StoryEngine(ClusterParams.from_settings(SETTINGS.engine))
    embedder.batch_size = 1
    use_threads(embedder)
    done, started = 0, time.perf_counter()
    produce_rows(rows, bootstrap, src)
    try:
        while done < len(rows):
            for msg in consumer:
                headers = dict(msg.headers or [])
                article = parse_article(msg.value, SETTINGS.max_record_bytes)
                vector = embedder.encode([article.embed_text(SETTINGS.embed_max_chars)])[0]
                stamp = int(headers.get("storywatch-replay-time", msg.timestamp)) / 1000
                assignment, _ = engine.process(article, vector, stamp)
                if assignment is not None:
                    value = {**asdict(assignment), "produced_at": msg.timestamp / 1000}
                    producer.send(
                        dst, key=assignment.story_id.encode(), value=json.dumps(value).encode()
                    )
                done += 1
                if done == len(rows):
                    break
        producer.flush()
        return len(rows) / (time.perf_counter() - started)
    finally:
        embedder.batch_size = BATCH
        consumer.close()
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer articles, < 1 minute")
    parser.add_argument("--backend", choices=["torch", "openvino"], default="torch")
    parser.add_argument("--max-tokens", type=int, help="the worker's STORYWATCH_EMBED_MAX_TOKENS")
    parser.add_argument("--threads", type=int, help="the worker's STORYWATCH_EMBED_THREADS")
    parser.add_argument("--only", choices=["headlines", "articles"], help="one kind of text")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the workers only (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    args = parser.parse_args()
    WORKER_SETTINGS.update(item.split("=", 1) for item in args.env)
    WORKER_SETTINGS["STORYWATCH_EMBED_BACKEND"] = args.backend
    if args.max_tokens:
        WORKER_SETTINGS["STORYWATCH_EMBED_MAX_TOKENS"] = str(args.max_tokens)
    if args.threads:
        WORKER_SETTINGS["STORYWATCH_EMBED_THREADS"] = str(args.threads)
    # (measured, warm-up, latency) article counts per kind
    # Why these counts: this CPU embeds ~50-100 headlines/s and ~5-10 full articles/s; the
    # full run must stay under 5 minutes, --quick under 1 (headlines only).
    sizes = (
        {"headlines": (100, 16, 50)}
        if args.quick
        else {"headlines": (600, 32, 300), "articles": (100, 16, 50)}
    )
    if args.only:
        sizes = {args.only: sizes[args.only]}
    embedder = Embedder(SETTINGS.model, SETTINGS.embed_device, BATCH)
    embedder.load()
    embedder.encode(["warm-up"] * BATCH)
    backend = None
    if args.backend != "torch" or args.max_tokens or args.threads:
        backend = Embedder(
            SETTINGS.model,
            SETTINGS.embed_device,
            BATCH,
            backend=args.backend,
            max_tokens=args.max_tokens,
            threads=args.threads,
        )
        backend.encode(["warm-up"] * BATCH)
    print(f"worker settings {WORKER_SETTINGS}")
    print(f"batch size {BATCH}, nproc {os.cpu_count()}, loadavg {os.getloadavg()[0]:.1f} at start")
    results = []
    with tempfile.TemporaryDirectory(prefix="storywatch-bench-") as tmp:
        broker_dir = Path(tmp) / "kafka"
        started = time.perf_counter()
        broker = start_broker(
            SETTINGS.kafka_dir, SETTINGS.kafka_version, port=free_port(), data_dir=broker_dir
        )
        print(f"broker {broker.bootstrap} up in {time.perf_counter() - started:.1f}s")
        try:
            for kind, (n, n_warm, n_late) in sizes.items():
                rows = load_rows(kind)
                measured, late, warm = rows[:n], rows[n : n + n_late], rows[-n_warm:]
                res = pipeline_run(
                    broker.bootstrap,
                    broker.pid,
                    Path(tmp),
                    kind,
                    rows=measured,
                    warm=warm,
                    late=late,
                    embedder=embedder,
                    backend=backend,
                )
                res["naive"] = naive_run(broker.bootstrap, measured, backend or embedder)
                res.update(
                    short_windows_run(
                        broker.bootstrap,
                        Path(tmp) / f"{kind}-short",
                        warm=warm,
                        late=late,
                        rate=res["latency_rate"],
                    )
                )
                results.append(res)
                print("raw:", res, flush=True)
        finally:
            stop_broker(broker_dir)
    print(f"loadavg {os.getloadavg()[0]:.1f} at end")
    print_tables(results)


def print_tables(results: list[dict]) -> None:
    print(
        "\n| kind | articles | raw encode before / after (texts/s) | pipeline articles/s "
        "| efficiency vs mean raw (target >= 0.90) | naive articles/s "
        "| pipeline / naive (target >= 5x) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        raw = (r["raw_before"] + r["raw_after"]) / 2
        print(
            f"| {r['kind']} | {r['articles']} | {r['raw_before']:.1f} / {r['raw_after']:.1f} "
            f"| {r['pipeline']:.1f} | {r['pipeline'] / raw:.2f} "
            f"(vs before {r['pipeline'] / r['raw_before']:.2f}, after "
            f"{r['pipeline'] / r['raw_after']:.2f}) | {r['naive']:.1f} "
            f"| {r['pipeline'] / r['naive']:.2f}x |"
        )
        if "raw_backend_before" in r:
            same = (r["raw_backend_before"] + r["raw_backend_after"]) / 2
            print(
                f"|   same raw, worker's backend ({WORKER_SETTINGS}) | | "
                f"{r['raw_backend_before']:.1f} / {r['raw_backend_after']:.1f} | "
                f"| {r['pipeline'] / same:.2f} vs that backend's raw | | |"
            )
    print(
        "\n| kind | CPU ms per article: raw encode (alone) | worker model threads "
        "| worker event loop | broker | bench (produce + read) | cores busy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        who = ("worker_model", "worker_loop", "broker", "bench")
        busy = sum(r[f"cpu_share_{w}"] for w in who)
        print(
            f"| {r['kind']} | {r['cpu_ms_raw_encode']:.1f} | "
            + " | ".join(f"{r[f'cpu_ms_{w}']:.1f} ({r[f'cpu_share_{w}']:.0%})" for w in who)
            + f" | {busy:.0%} |"
        )
    print(
        "\n| kind | articles | offered rate (1/2 pipeline max) | p50 s | p95 s | p99 s "
        "(target <= 2 s) | max s | cold first batch s (model load) "
        "| near-zero windows: p50 / p99 s | windows' share of p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        share = 1 - r["short_latency_p50"] / r["latency_p50"]
        print(
            f"| {r['kind']} | {r['latency_articles']} | {r['latency_rate']:.1f}/s "
            f"| {r['latency_p50']:.3f} | {r['latency_p95']:.3f} | {r['latency_p99']:.3f} "
            f"| {r['latency_max']:.3f} | {r['cold_first_batch_s']:.1f} "
            f"| {r['short_latency_p50']:.3f} / {r['short_latency_p99']:.3f} | {share:.0%} |"
        )


if __name__ == "__main__":
    main()
