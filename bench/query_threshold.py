"""Measure the default ``query_threshold`` of a subscription's semantic query.

Why: a subscription's free-text query matches a story when cosine(query, story centroid) >=
``query_threshold``; the default should be the one that best separates "this story is what
the query is about" from "it is not" on the labeled dev data.

Method, on data/uci-headlines-dev.jsonl and data/ecbplus-dev.jsonl:
1. Embed every valid article (the one ECB+ row with no title and no text is skipped, as the
   pipeline dead-letters it) as the embed agent does (``Article.embed_text``: "title. text" cut at
   ``settings.embed_max_chars``) with the project's ``Embedder`` (unit vectors).
2. For each gold story with >= 2 articles, pick one article (seeded ``random.Random``) and
   embed its TITLE alone as the query: a headline is a proxy for what a user types.
3. Score the query against every gold story of the same file: the centroid is the mean of
   the unit embeddings of the story's articles OTHER than the query article, normalized (so
   the query's own story is judged on the rest of its articles, never on the query itself).
4. For each threshold 0.20..0.80 step 0.05, a (query, story) pair is predicted "matches" when
   cosine >= threshold, and is truly positive when the story is the query's gold story.
   Report precision, recall and F1 over pairs, per file and on both files pooled (counts
   summed; stories are only compared within their own file).
``--repeats`` draws that many query sets (seeds 0..repeats-1) and pools their counts, so the
choice does not rest on one lucky headline per story.

Run: .venv/bin/python bench/query_threshold.py [--repeats 5] [--limit N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from streams.engine.embedding import Embedder  # noqa: E402
from streams.engine.offline import read_jsonl  # noqa: E402
from streams.engine.validation import InvalidArticle, article_from_mapping  # noqa: E402

DATA = ROOT / "data"
FILES = ("uci-headlines-dev.jsonl", "ecbplus-dev.jsonl")
THRESHOLDS = tuple(round(0.20 + 0.05 * i, 2) for i in range(13))

Matrix = npt.NDArray[np.float32]


@dataclass
class Counts:
    """Pair counts at one threshold."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


def _unit(v: Matrix) -> Matrix:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def measure(embedder: Embedder, path: Path, repeats: int, limit: int | None) -> dict[float, Counts]:
    """Pair counts per threshold for one file, over ``repeats`` seeded query choices."""
    rows = read_jsonl(path)[:limit] if limit else read_jsonl(path)
    articles, labels = [], []
    for row in rows:
        try:
            articles.append(article_from_mapping(row))
        except InvalidArticle:
            continue  # the pipeline dead-letters it too (one empty ECB+ article)
        labels.append(str(row["label"]))
    max_chars = Settings().embed_max_chars
    started = time.perf_counter()
    docs = embedder.encode([a.embed_text(max_chars) for a in articles])
    titles = embedder.encode([a.title for a in articles])
    took = time.perf_counter() - started
    print(f"{path.name}: embedded {len(articles)} of {len(rows)} rows in {took:.0f}s")

    members: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        members[label].append(i)
    stories = sorted(members)
    sums = {s: docs[members[s]].sum(axis=0) for s in stories}
    centroids = np.stack([_unit(sums[s]) for s in stories])

    counts = {t: Counts() for t in THRESHOLDS}
    for seed in range(repeats):
        rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
        for gold, story in enumerate(stories):
            if len(members[story]) < 2:
                continue  # no other article to build the story from
            q = rng.choice(members[story])
            own = centroids.copy()
            own[gold] = _unit(sums[story] - docs[q])  # the story without the query article
            scores = own @ titles[q]
            for t in THRESHOLDS:
                hit = scores >= t
                tp = int(hit[gold])
                counts[t].add(Counts(tp, int(hit.sum()) - tp, 1 - tp))
    return counts


def report(name: str, counts: dict[float, Counts]) -> float:
    """Print one table; return the F1-best threshold."""
    print(f"\n{name}\n threshold  precision  recall     F1    (tp/fp/fn)")
    best = max(THRESHOLDS, key=lambda t: (counts[t].prf()[2], -t))
    for t in THRESHOLDS:
        p, r, f = counts[t].prf()
        c = counts[t]
        mark = "  <- best F1" if t == best else ""
        print(f"   {t:.2f}      {p:.3f}    {r:.3f}   {f:.3f}   ({c.tp}/{c.fp}/{c.fn}){mark}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="seeded query sets (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="first N rows per file (smoke)")
    args = parser.parse_args()
    embedder = Embedder()
    embedder.load()
    pooled = {t: Counts() for t in THRESHOLDS}
    for name in FILES:
        counts = measure(embedder, DATA / name, args.repeats, args.limit)
        report(name, counts)
        for t in THRESHOLDS:
            pooled[t].add(counts[t])
    best = report("both files pooled", pooled)
    print(f"\nDEFAULT_QUERY_THRESHOLD = {round(round(best / 0.05) * 0.05, 2)}")


if __name__ == "__main__":
    main()
