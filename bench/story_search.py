"""Worst-case work of a search (``GET /api/stories?q=``) at 100,000 active stories.

Why: issue 19 item 4 - "a search for two common words walks every active story on the
event loop". A query's work happens inside the worker's event loop (the read model is
in-process), so its worst case is how long every other request, stream and agent waits.

What it does: feeds the read model with the same synthetic stories as bench/api_stories.py
(100,000 stories, headlines from a 5,000-word Zipf-skewed vocabulary), then times
``StoryReadModel.query`` directly (the event loop's share; no HTTP) for: the two commonest
words; the pair of common words (each in more than 2,000 stories) that share the fewest
stories (the worst case: few or no matches, so a scan finds nothing to stop at); that
pair with ``sort=size``; a common and a rare word; and, for each, how many stories the
query examined and whether it answered a partial page. p50 / max over ``--repeats`` each.

Run: .venv/bin/python bench/story_search.py [--stories 100000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import time
from pathlib import Path

# This checkout's code (a script's own folder comes first on sys.path, not the working
# directory, so without this an editable install elsewhere would be measured), then the
# bench folder for the shared feed.
sys.path[:0] = [str(Path(__file__).parent.parent), str(Path(__file__).parent)]

from api_stories import HOURS, feed  # noqa: E402 (after the path above)

from streams.read_model import StoryQuery, StoryReadModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    model = StoryReadModel(window_s=HOURS * 3600.0 * 100, articles_per_story=200)
    t0 = time.perf_counter()
    feed(model, args.stories)
    print(f"fed {len(model)} stories in {time.perf_counter() - t0:.1f} s")
    by_word = model._indexes.by_word
    common = sorted(by_word, key=lambda w: -len(by_word[w]))[:40]
    big = [w for w in common if len(by_word[w]) > 2000]
    a, b = min(itertools.combinations(big, 2), key=lambda p: len(by_word[p[0]] & by_word[p[1]]))
    rare = min(by_word, key=lambda w: (len(by_word[w]), w))
    print(
        f"commonest: {common[0]} ({len(by_word[common[0]])} stories), {common[1]} "
        f"({len(by_word[common[1]])}); worst pair: {a} ({len(by_word[a])}), {b} "
        f"({len(by_word[b])}), sharing {len(by_word[a] & by_word[b])} stories"
    )
    queries = {
        f"q={common[0]} {common[1]} (commonest two)": StoryQuery(words=(common[0], common[1])),
        f"q={a} {b} (worst pair)": StoryQuery(words=(a, b)),
        f"q={a} {b}&sort=size": StoryQuery(sort="size", words=(a, b)),
        f"q={a} {rare} (common + rare)": StoryQuery(words=(a, rare)),
        # Two sets too large to intersect, and few stories that large: the bounded walk.
        f"q={common[0]} {common[1]}&min_size=20": StoryQuery(
            words=(common[0], common[1]), min_size=20
        ),
        f"q={common[0]} {common[1]}&min_size=20&sort=new": StoryQuery(
            sort="new", words=(common[0], common[1]), min_size=20
        ),
    }
    print(f"{'query':48} {'p50 ms':>8} {'max ms':>8} {'stories':>8} {'partial':>8}")
    for name, query in queries.items():
        samples = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            page = model.query(query)
            samples.append((time.perf_counter() - t) * 1000)
        partial = getattr(page, "partial", False)
        print(
            f"{name:48} {statistics.median(samples):8.2f} {max(samples):8.2f} "
            f"{len(page.stories):8d} {partial!s:>8}"
        )
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")


if __name__ == "__main__":
    main()
