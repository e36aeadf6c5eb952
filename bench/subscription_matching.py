"""Story events per second through the subscription matcher, before and after its candidate
indexes, at 10, 1,000 and 10,000 subscriptions.

Why: the subscriptions agent matches every story event; before the indexes it evaluated every
enabled subscription's rule on every event (and built a {subscription: score} map of every
query per event), so its cost grew with the subscriptions, not with what an event touches.

What it times, per subscription count, on the same events in one process, in turns:
- before: ``streams/subscriptions/matching.py`` as it was at commit 7461527 (read with
  ``git show``): ``score_maps`` per batch (every query's score as a Python float) and
  ``Matcher.observe`` evaluating every enabled rule on every event;
- after: the working tree's module: ``SemanticIndex.hits`` per batch (the queries at or
  above their threshold) and ``Matcher.observe`` over its candidate rules, as the agent
  runs them now.
Both see the batch's matrix product (64 events, ``STORYWATCH_STAGE_BATCH_SIZE``), so the
time is the agent's matching work per event without Kafka. The bench checks that both fire
the same alerts (dedup keys and evidence) and stops otherwise.

Events: the UCI dev headlines in a seeded shuffle (the first 1,000 of 2,989; the 400-line
sample when the shared data is absent), each a story event of its gold story (size and
distinct sources counted as they arrive; emerging from the 5th article). Story centroids: a
random unit vector per story (dim 384) plus noise per event. Subscriptions (seeded): 60%
keywords, 30% a semantic query (a tenth of them aimed at a story: its centroid plus noise),
8% both, 2% filter-only (``min_size`` 20); triggers new_story + growth (+ emerging for a
third). A keyword subscription has 1-3 ``any`` words (sometimes an ``all`` or a ``none``
word), each, by a coin toss, a word of these headlines (one in 2 of them to 1% of them: names,
topics) or a word absent from them (a topic not in this news: the assumption that most
watch lists are quiet at any moment; the "x" column depends on it).

Run: .venv/bin/python bench/subscription_matching.py [--events N] [--counts 10,1000,10000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.engine.offline import read_jsonl
from streams.subscriptions.matching import Matcher, StoryUpdate, phrase_tokens
from streams.subscriptions.model import Subscription, parse_subscription

_UCI = Path(__file__).resolve().parents[1] / "data" / "uci-headlines-dev.jsonl"
_SAMPLE = Path(__file__).resolve().parents[1] / "streams/samples/uci-headlines-sample.jsonl"
DIM = 384
BATCH = 64  # the stage's default batch (STORYWATCH_STAGE_BATCH_SIZE)
T0 = datetime(2014, 3, 10, tzinfo=UTC).timestamp()


# The last commit whose matcher scanned every rule on every event.
_BEFORE = "7461527"


def before_module() -> ModuleType:
    """The matching module as it was at :data:`_BEFORE`, imported under another name."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "-C", str(root), "show", f"{_BEFORE}:streams/subscriptions/matching.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"cannot read the matcher of commit {_BEFORE} ({exc}): run the bench in a git "
            "checkout of Storywatch that has that commit"
        ) from None
    module = ModuleType("matching_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, "matching_before.py", "exec"), module.__dict__)  # noqa: S102
    return module


Events = list[tuple[StoryUpdate, Any]]  # a story event and its story's centroid


def events(rows: list[dict[str, Any]], rng: np.random.Generator) -> Events:
    """One story event per headline, with its story's centroid (plus noise)."""
    centroids: dict[str, np.ndarray] = {}
    sizes: Counter[str] = Counter()
    sources: dict[str, set[str]] = {}
    out = []
    for i, row in enumerate(rows):
        story = str(row.get("label") or row["id"])
        if story not in centroids:
            centroids[story] = rng.normal(size=DIM)
        sizes[story] += 1
        sources.setdefault(story, set()).add(row["source"])
        update = StoryUpdate(
            story_id=story,
            title=row["title"],
            text=row.get("text") or "",
            source=row["source"],
            size=sizes[story],
            source_count=len(sources[story]),
            headline=row["title"],
            keywords=(),
            url=None,
            event_time=T0 + i,
            decision="new" if sizes[story] == 1 else "joined",
            emerging=sizes[story] >= 5,
        )
        out.append((update, centroids[story] + rng.normal(scale=0.5, size=DIM)))
    return out


def _word(vocabulary: list[str], rng: random.Random) -> str:
    """A word of the headlines, or (half the time) a topic absent from them."""
    return rng.choice(vocabulary) if rng.random() < 0.5 else f"quiet{rng.randrange(10**6)}"


def subscriptions(
    n: int, vocabulary: list[str], stories: list[np.ndarray], rng: random.Random
) -> tuple[list[Subscription], dict[str, np.ndarray]]:
    """``n`` subscriptions and their query vectors, by query text."""
    subs, vectors = [], {}
    for i in range(n):
        kind = rng.random()
        spec: dict[str, Any] = {"triggers": ["new_story", "growth"]}
        if rng.random() < 1 / 3:
            spec["triggers"].append("emerging")
        if kind < 0.68:
            keywords: dict[str, list[str]] = {
                "any": [_word(vocabulary, rng) for _ in range(rng.randint(1, 3))]
            }
            if rng.random() < 0.1:
                keywords["all"] = [_word(vocabulary, rng)]
            if rng.random() < 0.1:
                keywords["none"] = [_word(vocabulary, rng)]
            spec["keywords"] = keywords
        if 0.6 <= kind < 0.98:
            query = f"query {i}"
            aimed = rng.random() < 0.1
            base = rng.choice(stories) if aimed else np.zeros(DIM)
            vectors[query] = base + np.random.default_rng(i).normal(size=DIM)
            spec["query"] = query
        if kind >= 0.98:
            spec["min_size"] = 20
        parsed = parse_subscription({"name": f"s{i}", "filter": spec})
        subs.append(replace(Subscription.create(parsed, "bench", T0), id=f"s{i:05d}"))
    return subs, vectors


def run(
    module: ModuleType, subs: list[Subscription], vectors: Mapping[str, np.ndarray], stream: Events
) -> tuple[float, list[tuple[str, Any]]]:
    """Seconds to match ``stream`` in batches with ``module``'s matcher, and what fired.
    The indexes are built before the clock starts (the agent builds them on a change)."""
    index = module.SemanticIndex.build(subs, lambda texts: np.stack([vectors[t] for t in texts]))
    matcher = module.Matcher(subs)
    score = getattr(index, "hits", index.score_maps)
    states: dict[str, Any] = {}
    fired: list[Any] = []
    start = time.perf_counter()
    for at in range(0, len(stream), BATCH):
        batch = stream[at : at + BATCH]
        scores = score(np.stack([c for _, c in batch]))
        for (update, _), semantic in zip(batch, scores, strict=True):
            state = states.setdefault(update.story_id, module.StoryMatchState())
            fired += matcher.observe(update, state, semantic)
    return time.perf_counter() - start, [(m.dedup_key, m.why) for m in fired]


def _vocabulary(rows: list[dict[str, Any]]) -> list[str]:
    """Words people subscribe to: in 2 to 1% of the headlines (names, topics), 4+ letters."""
    df = Counter(t for r in rows for t in set(phrase_tokens(r["title"])) if len(t) >= 4)
    return sorted(t for t, n in df.items() if 2 <= n <= max(2, len(rows) // 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="story events (headlines)")
    parser.add_argument("--counts", default="10,1000,10000", help="subscription counts")
    parser.add_argument("--repeats", type=int, default=2, help="turns of each, best kept")
    args = parser.parse_args()

    rows = read_jsonl(_UCI if _UCI.exists() else _SAMPLE)
    random.Random(7).shuffle(rows)  # noqa: S311  # the file is grouped by story; a live stream interleaves
    rows = rows[: args.events]
    stream = events(rows, np.random.default_rng(7))
    vocabulary = _vocabulary(rows)
    story_centroids = list({u.story_id: c for u, c in stream}.values())
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {len(stream)} events, "
        f"{len(story_centroids)} stories, {len(vocabulary)} distinct words"
    )
    before, after = before_module(), sys.modules[Matcher.__module__]
    table = []
    for n in (int(c) for c in args.counts.split(",")):
        subs, vectors = subscriptions(n, vocabulary, story_centroids, random.Random(n))  # noqa: S311
        best = {"before": float("inf"), "after": float("inf")}
        for _ in range(args.repeats):
            t_before, fired_before = run(before, subs, vectors, stream)
            t_after, fired_after = run(after, subs, vectors, stream)
            if fired_before != fired_after:
                raise SystemExit(f"{n} subscriptions: the two matchers fired different alerts")
            best["before"] = min(best["before"], t_before)
            best["after"] = min(best["after"], t_after)
        rate = {k: len(stream) / v for k, v in best.items()}
        print(
            f"{n} subscriptions: before {rate['before']:,.0f} events/s, after "
            f"{rate['after']:,.0f} events/s ({len(fired_after)} alerts, same in both)"
        )
        table.append((n, rate["before"], rate["after"], len(fired_after)))
    print(f"\n| subscriptions | before ({_BEFORE}) events/s | after events/s | x | alerts |")
    print("|---:|---:|---:|---:|---:|")
    for n, before, after, alerts in table:
        print(f"| {n:,} | {before:,.0f} | {after:,.0f} | {after / before:.1f}x | {alerts:,} |")


if __name__ == "__main__":
    main()
