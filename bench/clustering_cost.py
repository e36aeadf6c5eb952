"""Per-article cost of story assignment as the number of active stories grows.

Why: clustering runs on ONE ordered stream (one partition, one worker), so its per-article
cost caps the whole pipeline. The index is a brute-force matrix (one mat-vec per article),
whose cost grows linearly with the active stories. The issue's target: <= 1 ms per article
with 100k active stories, and the worker's memory (RSS) at 100k active stories.

What it does, for N active stories:
- engine: builds N synthetic stories in the engine's own table-record format
  (``_Story.record()`` / ``_Group.record()`` / seen records, exactly what the cluster agent
  writes into its tables), loads them with ``StoryEngine.restore()`` (the recovery path), then
  times ``StoryEngine.process()`` for new articles: half re-word an existing story (its
  centroid + noise, cosine ~0.8: "joined"), half are random ("new" story).
- index: fills a ``StoryIndex`` directly and times the lookup the engine makes alone
  (``candidates(q, k)`` top-k) and ``nearest()`` (the bare mat-vec + argmax).
Titles of new articles and story headlines/term profiles are real UCI headlines.
Vectors: random unit vectors, dim 384 (all-MiniLM-L6-v2). All stories are active (inside the
72 h window), so nothing expires and every row is
scanned: the worst case.

RSS (VmRSS from /proc/self/status) is read in a fresh subprocess: before, after building the
table records of 100k stories (the worker's Faust tables are ``memory://``, so it holds these
too), and after restore() (the engine's in-memory state on top). Engine and index are also
timed with BLAS limited to 1 thread, side by side, because the machine has 2 shared cores
and OpenBLAS threads suffer under contention.

Run: .venv/bin/python bench/clustering_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.engine.article import Article, stable_id
from streams.engine.clustering import ClusterParams, StoryEngine
from streams.engine.evidence import DocumentFrequencies, entities, term_vector, terms
from streams.engine.offline import read_jsonl
from streams.engine.story_index import StoryIndex
from streams.engine.vectors import encode_vector

_UCI = Path("/work/shared/data/uci-headlines-dev.jsonl")
_SAMPLE = Path(__file__).resolve().parents[1] / "streams/samples/uci-headlines-sample.jsonl"
TITLES = [r["title"] for r in read_jsonl(_UCI if _UCI.exists() else _SAMPLE)]

DIM = 384
T0 = datetime(2014, 3, 10, tzinfo=UTC).timestamp()
SOURCES = ["Reuters", "AP", "BBC", "CNN", "Bloomberg"]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def synthetic_state(n: int, rng: np.random.Generator):
    """N stories of 2 articles (one near-duplicate group each), in the engine's record format,
    all active within the last hour. Returns (stories, groups, seen, centroids)."""
    centroids = unit_rows(rng, n)
    stories, groups, seen = [], [], {}
    # real headline terms, as the engine would have summed them (2 members)
    df = DocumentFrequencies()
    for title in TITLES:
        df.add(terms(title))
    profiles = {}
    for title in TITLES:
        vec = term_vector(title, "", df)
        profiles[title] = (
            {t: 2 * w for t, w in vec.items()},
            sorted(terms(title)),
            sorted(entities(title, "")),
        )
    for i in range(n):
        t = T0 + 3600.0 * i / n
        sid, gid = stable_id("st", f"a{i}"), stable_id("dg", f"a{i}")
        title = TITLES[i % len(TITLES)]
        story = {
            "id": sid,
            "centroid_sum": encode_vector(centroids[i] * 2),  # sum of 2 unit members
            "size": 2,
            "sources": {SOURCES[i % 5]: 1, SOURCES[(i + 1) % 5]: 1},
            "first_seen": t,
            "last_seen": t,
            "last_active": t,
            "headline": title,
            "headline_group_size": 2,
        }
        summed, article_terms, names = profiles[title]
        story.update(terms=summed, entities=dict.fromkeys(names, 2))
        extra = {"terms": article_terms, "entities": names}
        stories.append(story)
        groups.append(
            {
                "id": gid,
                "story_id": sid,
                "vector": encode_vector(centroids[i]),
                "size": 2,
                "title": title,
            }
        )
        for member in (f"a{i}", f"b{i}"):
            content = stable_id("c", member)
            seen[f"id:{member}"] = {
                "story_id": sid,
                "group_id": gid,
                "ts": t,
                **extra,
                "content": content,
            }
    return stories, groups, seen, centroids


def new_articles(count: int, centroids: np.ndarray, rng: np.random.Generator):
    """Half re-word an existing story (cosine ~0.8 to it), half are unrelated."""
    arts, vecs = [], []
    pub = datetime.fromtimestamp(T0 + 3600.0, UTC)
    for j in range(count):
        if j % 2 == 0:
            v = centroids[rng.integers(len(centroids))] + 0.75 * unit_rows(rng, 1)[0]
        else:
            v = unit_rows(rng, 1)[0]
        title = TITLES[(j * 7) % len(TITLES)]
        arts.append(
            Article(id=f"new-{j}", title=f"{title} ({j})", source=SOURCES[j % 5], published_at=pub)
        )
        vecs.append((v / np.linalg.norm(v)).astype(np.float32))
    return arts, vecs


def stats_us(seconds: list[float]) -> tuple[float, float]:
    us = np.asarray(seconds) * 1e6
    return float(np.median(us)), float(np.percentile(us, 99))


def memory(n: int) -> dict:
    """Run in a fresh process: RSS growth from building ``n`` stories' table records, then
    from loading them into the engine with restore() (freed Python memory is not returned to
    the OS, so the engine's share is measured as the second step, with the records alive)."""
    rng = np.random.default_rng(7)
    gc.collect()
    rss0 = rss_mib()
    stories, groups, seen, centroids = synthetic_state(n, rng)
    del centroids
    gc.collect()
    rss1 = rss_mib()
    engine = StoryEngine(ClusterParams())
    engine.restore(stories, groups, seen)
    gc.collect()
    rss2 = rss_mib()
    return {
        "n": n,
        "active": engine.active_stories,
        "rss_start_mib": rss0,
        "records_mib": rss1 - rss0,
        "engine_mib": rss2 - rss1,
        "rss_end_mib": rss2,
    }


def memory_in_subprocess(n: int) -> dict:
    cmd = [sys.executable, __file__, "--rss", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_engine(n: int, count: int, rng: np.random.Generator):
    stories, groups, seen, centroids = synthetic_state(n, rng)
    engine = StoryEngine(ClusterParams())
    started = time.perf_counter()
    engine.restore(stories, groups, seen)
    restore_s = time.perf_counter() - started
    del stories, groups, seen
    gc.collect()
    arts, vecs = new_articles(count, centroids, rng)
    # Articles alternate in pairs (one join, one new) between default BLAS threads and BLAS
    # limited to 1 thread: both variants see the same load, side by side.
    times: dict[bool, list[float]] = {False: [], True: []}
    decisions = {"new": 0, "joined": 0, "duplicate": 0}
    record_ts = T0 + 3600.0
    for j, (art, vec) in enumerate(zip(arts, vecs, strict=True)):
        one_thread = (j // 2) % 2 == 1
        with threadpool_limits(limits=1 if one_thread else None):
            t = time.perf_counter()
            assignment, _ = engine.process(art, vec, record_ts)
            times[one_thread].append(time.perf_counter() - t)
        decisions[assignment.decision] += 1
    med, p99 = stats_us(times[False])
    med1, p991 = stats_us(times[True])
    result = {
        "n": n,
        "median_us": med,
        "p99_us": p99,
        "blas1_median_us": med1,
        "blas1_p99_us": p991,
        "restore_s": restore_s,
        "decisions": decisions,
    }
    del engine
    gc.collect()
    return result


def bench_index(n: int, count: int, rng: np.random.Generator):
    index = StoryIndex(DIM)
    rows = unit_rows(rng, n)
    for i in range(n):
        index.upsert(f"s{i}", rows[i])
    # Fewer queries on the biggest matrices keep the run bounded (1M: p99 ~ max of 30).
    queries = unit_rows(rng, min(count, max(30, 20_000_000 // n)))
    out = {"n": n, "queries": len(queries)}
    # the engine asks for its top-k candidates; nearest() is top-1 (the bare mat-vec + argmax)
    k = ClusterParams().candidates
    lookups = {"lookup": lambda q: index.candidates(q, k), "matvec": index.nearest}
    lookups["lookup_blas1"] = lookups["lookup"]
    for name, lookup in lookups.items():
        with threadpool_limits(limits=1 if name.endswith("blas1") else None):
            lookup(queries[0])  # warm-up
            times = []
            for q in queries:
                t = time.perf_counter()
                lookup(q)
                times.append(time.perf_counter() - t)
        out[f"{name}_median_us"], out[f"{name}_p99_us"] = stats_us(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, < 1 minute")
    parser.add_argument("--rss", type=int, help=argparse.SUPPRESS)  # internal: memory() mode
    args = parser.parse_args()
    if args.rss:
        print(json.dumps(memory(args.rss)))
        return
    rng = np.random.default_rng(42)
    engine_sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    index_sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    count = 200 if args.quick else 400
    blas = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    print(
        f"numpy {np.__version__}, BLAS pools {blas}, {count} articles per size, "
        f"loadavg {os.getloadavg()[0]:.1f} at start"
    )

    mem_n = engine_sizes[-1]
    mem = memory_in_subprocess(mem_n)
    engine_rows = [bench_engine(n, count, rng) for n in engine_sizes]
    index_rows = [bench_index(n, count, rng) for n in index_sizes]

    print(f"\nraw (loadavg {os.getloadavg()[0]:.1f} at end):")
    for row in [mem, *engine_rows, *index_rows]:
        print(row)

    lookup = f"candidates(k={ClusterParams().candidates})"
    matvec = "nearest"
    print(
        f"\n| active stories | engine.process median µs | engine.process p99 µs "
        f"| engine.process, BLAS 1 thread, median / p99 µs "
        f"| index.{lookup} median / p99 µs | index.{matvec} median / p99 µs "
        f"| index.{lookup}, BLAS 1 thread, median / p99 µs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    by_n = {r["n"]: r for r in engine_rows}
    for ix in index_rows:
        e = by_n.get(ix["n"])
        eng = (
            f"{e['median_us']:.0f} | {e['p99_us']:.0f} | {e['blas1_median_us']:.0f} / "
            f"{e['blas1_p99_us']:.0f}"
            if e
            else "not run | not run | not run"
        )
        print(
            f"| {ix['n']:,} | {eng} | {ix['lookup_median_us']:.0f} / {ix['lookup_p99_us']:.0f} "
            f"| {ix['matvec_median_us']:.0f} / {ix['matvec_p99_us']:.0f} "
            f"| {ix['lookup_blas1_median_us']:.0f} / {ix['lookup_blas1_p99_us']:.0f} |"
        )
    big = engine_rows[-1]
    print(
        f"\nmemory at {mem_n:,} active stories (fresh process, VmRSS): engine state "
        f"+{mem['engine_mib']:.0f} MiB, table records (as memory:// tables hold them) "
        f"+{mem['records_mib']:.0f} MiB, process RSS {mem['rss_start_mib']:.0f} -> "
        f"{mem['rss_end_mib']:.0f} MiB; restore() of {big['n']:,} took {big['restore_s']:.1f} s"
    )
    verdict = "meets" if big["p99_us"] <= 1000 else "MISSES"
    print(
        f"target <= 1 ms/article at {big['n']:,}: median {big['median_us']:.0f} µs, "
        f"p99 {big['p99_us']:.0f} µs -> {verdict} (p99)"
    )


if __name__ == "__main__":
    main()
