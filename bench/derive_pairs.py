"""Derive judged pairs ``{a, b, same_story, kind}`` from a labeled documents file.

Why: B-cubed over a whole file can hide that two different events of the same kind (ECB+:
two earthquakes in one topic; UCI: two business stories) end up in one story. Pairs of three
kinds, ``per-kind`` of each: two articles of one story ("same"), two stories of one kind
("same_kind", the hard negatives: same ECB+ ``topic`` or UCI ``category``, other label), two
kinds ("other_kind"). Deterministic: a seeded ``random.Random`` over the rows in file order,
so the same file, count and seed give the same lines, byte for byte.

Run (the committed files were made so):
  .venv/bin/python bench/derive_pairs.py data/ecbplus-dev.jsonl \
      --out bench/pairs/ecbplus-dev-pairs.jsonl
  .venv/bin/python bench/derive_pairs.py data/uci-headlines-dev.jsonl \
      --out bench/pairs/uci-headlines-dev-pairs.jsonl
Score them: .venv/bin/storywatch eval FILE --pairs PAIRS
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from streams.engine.offline import read_jsonl
from streams.engine.pairs import derive_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="labeled documents file (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="pairs file to write (JSONL)")
    parser.add_argument("--per-kind", type=int, default=1000, help="pairs of each kind")
    parser.add_argument("--seed", type=int, default=14, help="generator seed")
    args = parser.parse_args()
    pairs = derive_pairs(read_jsonl(args.file), per_kind=args.per_kind, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for p in pairs:
            line = {"a": p.a, "b": p.b, "same_story": p.same_story, "kind": p.kind}
            handle.write(json.dumps(line) + "\n")
    counts = Counter(p.kind for p in pairs)
    print(f"{len(pairs)} pairs -> {args.out} ({dict(sorted(counts.items()))})")


if __name__ == "__main__":
    main()
