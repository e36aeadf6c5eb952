"""One story grows to 10,000 articles: the clustering stage's cost per article, and the size
of the story's state record, per 1,000 articles.

Every article joins the one story (its vector is the story's direction plus noise, so each
is its own near-duplicate group) and brings new words, names and outlets: the worst case for
the story's profile (terms, names, outlets) and for near-duplicate matching (one more group
per article). Per block: milliseconds per article of ``StoryEngine.process`` plus the
batch's record writes (``StateChanges.records()`` as JSON every 64 articles, what the
cluster agent does), and the story record's size.

  .venv/bin/python bench/story_growth.py [--articles 10000] [--dim 384]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.engine.article import Article
from streams.engine.clustering import ClusterParams, StateChanges, StoryEngine
from streams.engine.evidence import TextEvidence

# Why 64: the cluster agent's batch (STORYWATCH_STAGE_BATCH_SIZE): state is written per batch.
BATCH = 64
T0 = 1_700_000_000.0


def articles(count: int, dim: int, seed: int = 7):
    """(article, vector, evidence) of one growing story: new words, names and outlets."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(dim).astype(np.float32)
    base /= np.linalg.norm(base)
    for n in range(count):
        noise = rng.standard_normal(dim).astype(np.float32)
        vector = base + 0.5 * noise / np.linalg.norm(noise)
        words = [f"w{int(x)}" for x in rng.integers(0, 200_000, 8)]
        names = {f"name{int(x)}" for x in rng.integers(0, 50_000, 5)}  # < entity_min
        article = Article(id=f"a{n}", title=" ".join(words), source=f"outlet-{n % 3000}")
        evidence = TextEvidence({w: 1 for w in [*words, "quake"]}, frozenset(names), f"c{n}")
        yield article, vector, evidence


def run(count: int, dim: int) -> list[tuple[int, float, int]]:
    engine = StoryEngine(ClusterParams())
    pending = StateChanges()
    rows = []
    started = time.perf_counter()
    for n, (article, vector, evidence) in enumerate(articles(count, dim), start=1):
        _, changes = engine.process(article, vector, T0 + n, evidence)
        pending.merge(changes)
        if n % BATCH == 0:
            json.dumps(pending.records())
            pending = StateChanges()
        if n % 1000 == 0:
            elapsed = time.perf_counter() - started
            story = next(iter(engine._stories))  # the one story (bench only)
            size = len(json.dumps(story.record()))
            rows.append((n, 1000 * elapsed / 1000, size))
            started = time.perf_counter()
    assert engine.active_stories == 1, f"{engine.active_stories} stories: the bench needs one"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    print("articles  ms/article (last 1,000)  story record (KiB)")
    for n, ms, size in run(args.articles, args.dim):
        print(f"{n:>8}  {ms:>24.3f}  {size / 1024:>18.1f}")


if __name__ == "__main__":
    main()
