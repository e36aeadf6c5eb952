"""Per-article cost of story assignment as the number of active stories grows.

Why: clustering runs on ONE ordered stream (one partition, one worker), so its per-article
cost caps the whole pipeline. The issue's target: <= 1 ms per article with 100k active
stories, and the worker's memory (RSS) at 100k active stories.

Two configurations, side by side on the same state and the same articles:
- exact: ``index_exact_max`` = 10^9, every lookup scans every centroid (brute force);
- default: exact up to ``index_exact_max`` (50,000) stories, then k-means lists (16 probes)
  plus the stories sharing the article's rarest terms (approximate).

What it does, for N active stories:
- engine: builds N synthetic stories in the engine's own table-record format
  (``Story.record()`` / ``Group.record()`` / seen records, exactly what the cluster agent
  writes into its tables), loads them with ``StoryEngine.restore()`` (the recovery path) into
  both engines, then times ``StoryEngine.process()`` for new articles, each through both
  engines in turns: half re-word an existing story (its centroid + noise, cosine ~0.8:
  "joined"), half are random ("new" story). Reports how often the default engine picks the
  same story as the exact one. Each article's ``TextEvidence`` (term counts, names) is read
  before the clock starts, as in the worker, where the parallel embed stage sends it.
- index: fills ``StoryIndex`` objects directly and times the top-k lookup the engine makes
  (``candidates(q, k)``), exact (default BLAS threads and 1 thread) and default.
- last, the default engine alone at the largest engine size (``--default-alone N`` runs only
  that): the exact engine's full scans flush the caches before each of its turns, so the
  side-by-side figure is pessimistic. Both are printed, each against the 1 ms target on the
  median and on the p99.
Titles of new articles and story headlines/term profiles are real UCI headlines.
Vectors: random unit vectors, dim 384 (all-MiniLM-L6-v2): no cluster structure, the hardest
case for the lists (recall on real embeddings: docs/BENCHMARKS.md). All stories are active
(inside the 72 h window), so nothing expires: the worst case.

RSS (VmRSS from /proc/self/status) is read in a fresh subprocess: before, after building the
table records of 100k stories (the worker's Faust tables are ``memory://``, so it holds these
too), and after restore() (the engine's in-memory state on top).

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
from streams.engine.clustering import ClusterParams, StoryEngine, story_keywords
from streams.engine.evidence import (
    DocumentFrequencies,
    TextEvidence,
    entities,
    term_vector,
    terms,
)
from streams.engine.offline import read_jsonl
from streams.engine.story_index import StoryIndex
from streams.engine.vectors import encode_vector

_UCI = Path(__file__).resolve().parents[1] / "data" / "uci-headlines-dev.jsonl"
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
    # what the engine keeps in a story record besides the profile (its norm and top terms)
    derived = {
        title: {
            "terms_norm_sq": sum(w * w for w in summed.values()),
            "keywords": story_keywords(summed),
        }
        for title, (summed, _, _) in profiles.items()
    }
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
        story.update(terms=summed, entities=dict.fromkeys(names, 2), **derived[title])
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


def engine_alone_in_subprocess(n: int) -> dict:
    """``--default-alone n`` in a fresh process: run in this one, after the 1M-row index, it
    read 1,367 µs against 1,038 µs in a fresh process a minute later."""
    cmd = [sys.executable, __file__, "--default-alone", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def memory_in_subprocess(n: int) -> dict:
    cmd = [sys.executable, __file__, "--rss", str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


EXACT = ClusterParams(index_exact_max=10**9)  # never partitions: the brute-force curve
DEFAULT = ClusterParams()  # exact up to index_exact_max, then lists + term postings


def bench_engine(n: int, count: int, rng: np.random.Generator, alone: bool = False):
    """The same state and the same articles through an always-exact engine and a default
    one, article by article in turns (side by side under the same load). ``alone``: the
    default engine only (the exact one's full scans flush the CPU caches between turns)."""
    stories, groups, seen, centroids = synthetic_state(n, rng)
    engines, restore_s = {}, {}
    configs = [("default", DEFAULT)] if alone else [("exact", EXACT), ("default", DEFAULT)]
    for label, params in configs:
        engine = StoryEngine(params)
        started = time.perf_counter()
        engine.restore(stories, groups, seen)
        restore_s[label] = time.perf_counter() - started
        engines[label] = engine
    del stories, groups, seen
    gc.collect()
    arts, vecs = new_articles(count, centroids, rng)
    # As in the worker: the embed stage reads each text's evidence, the cluster stage gets it.
    read = [TextEvidence.of(a.title, a.text) for a in arts]
    times: dict[str, list[float]] = {label: [] for label in engines}
    chosen: dict[str, list[str]] = {label: [] for label in engines}
    decisions = {"new": 0, "joined": 0, "duplicate": 0}
    record_ts = T0 + 3600.0
    order = list(engines)
    for j, (art, vec, evidence) in enumerate(zip(arts, vecs, read, strict=True)):
        for label in order if j % 2 == 0 else reversed(order):
            t = time.perf_counter()
            assignment, _ = engines[label].process(art, vec, record_ts, evidence)
            times[label].append(time.perf_counter() - t)
            chosen[label].append(assignment.story_id)
            if label == "default":
                decisions[assignment.decision] += 1
    exact = chosen.get("exact", chosen["default"])
    agree = sum(a == b for a, b in zip(exact, chosen["default"], strict=True))
    result = {"n": n, "decisions": decisions, "agree_with_exact": None if alone else agree / count}
    for label in engines:
        med, p99 = stats_us(times[label])
        result[f"{label}_median_us"], result[f"{label}_p99_us"] = med, p99
        result[f"{label}_restore_s"] = restore_s[label]
    result["partitioned"] = engines["default"].index.partitioned  # type: ignore[union-attr]
    del engines
    gc.collect()
    return result


def bench_index(n: int, count: int, rng: np.random.Generator):
    rows = unit_rows(rng, n)
    exact = StoryIndex(DIM, exact_max=10**9)
    default = StoryIndex(DIM, exact_max=DEFAULT.index_exact_max, probes=DEFAULT.index_probes)
    started = time.perf_counter()
    for i in range(n):
        default.upsert(f"s{i}", rows[i])
    fill_s = time.perf_counter() - started
    for i in range(n):
        exact.upsert(f"s{i}", rows[i])
    # Fewer queries on the biggest matrices keep the run bounded (1M: p99 ~ max of 30).
    queries = unit_rows(rng, min(count, max(30, 20_000_000 // n)))
    out = {"n": n, "queries": len(queries), "default_fill_s": fill_s}
    out["default_lists"] = default.list_count
    k = DEFAULT.candidates
    lookups = {
        "exact": lambda q: exact.candidates(q, k),
        "exact_blas1": lambda q: exact.candidates(q, k),
        "default": lambda q: default.candidates(q, k),
    }
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
    parser.add_argument(
        "--default-alone", type=int, metavar="N", help="only the default engine at N stories"
    )
    args = parser.parse_args()
    if args.default_alone:
        row = bench_engine(args.default_alone, 600, np.random.default_rng(42), alone=True)
        print(json.dumps(row))
        print(
            f"default engine alone at {row['n']:,} stories: median "
            f"{row['default_median_us']:.0f} µs, p99 {row['default_p99_us']:.0f} µs"
        )
        return
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
        f"exact up to {DEFAULT.index_exact_max:,} stories then {DEFAULT.index_probes} probes, "
        f"loadavg {os.getloadavg()[0]:.1f} at start"
    )

    mem_n = engine_sizes[-1]
    mem = memory_in_subprocess(mem_n)
    engine_rows = [bench_engine(n, count, rng) for n in engine_sizes]
    index_rows = [bench_index(n, count, rng) for n in index_sizes]

    print(f"\nraw (loadavg {os.getloadavg()[0]:.1f} at end):")
    for row in [mem, *engine_rows, *index_rows]:
        print(row)

    print(
        "\n| active stories | engine.process exact, median / p99 µs "
        "| engine.process default, median / p99 µs | default decisions = exact "
        "| index exact, median / p99 µs | index exact, BLAS 1 thread, median / p99 µs "
        "| index default, median / p99 µs | default lists |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_n = {r["n"]: r for r in engine_rows}
    for ix in index_rows:
        e = by_n.get(ix["n"])
        eng = (
            f"{e['exact_median_us']:.0f} / {e['exact_p99_us']:.0f} | "
            f"{e['default_median_us']:.0f} / {e['default_p99_us']:.0f} | "
            f"{e['agree_with_exact']:.1%}"
            if e
            else "not run | not run | not run"
        )
        print(
            f"| {ix['n']:,} | {eng} | {ix['exact_median_us']:.0f} / {ix['exact_p99_us']:.0f} "
            f"| {ix['exact_blas1_median_us']:.0f} / {ix['exact_blas1_p99_us']:.0f} "
            f"| {ix['default_median_us']:.0f} / {ix['default_p99_us']:.0f} "
            f"| {ix['default_lists']} |"
        )
    big = engine_rows[-1]
    print(
        f"\nmemory at {mem_n:,} active stories (fresh process, VmRSS): engine state "
        f"+{mem['engine_mib']:.0f} MiB, table records (as memory:// tables hold them) "
        f"+{mem['records_mib']:.0f} MiB, process RSS {mem['rss_start_mib']:.0f} -> "
        f"{mem['rss_end_mib']:.0f} MiB; restore() of {big['n']:,}: exact "
        f"{big['exact_restore_s']:.1f} s, default {big['default_restore_s']:.1f} s"
    )
    for label in ("exact", "default"):
        verdicts = [
            f"{'meets' if big[f'{label}_{stat}_us'] <= 1000 else 'MISSES'} ({stat})"
            for stat in ("median", "p99")
        ]
        print(
            f"target <= 1 ms/article at {big['n']:,}, {label}: median "
            f"{big[f'{label}_median_us']:.0f} µs, p99 {big[f'{label}_p99_us']:.0f} µs "
            f"-> {', '.join(verdicts)}"
        )
    alone = engine_alone_in_subprocess(big["n"])
    print(
        f"default engine alone at {alone['n']:,} (no exact engine flushing the caches between "
        f"turns): median {alone['default_median_us']:.0f} µs, p99 {alone['default_p99_us']:.0f} µs"
    )


if __name__ == "__main__":
    main()
