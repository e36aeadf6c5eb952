"""Story-quality experiments on the labeled dev files: merges after the fact, a learned join.

Why: docs/QUALITY.md reports what each idea adds, measured with one discipline: every
constant is chosen on one half of the dev stories and checked on the other half (halves by
a hash of the ECB+ topic, so both sibling events of a topic fall in one half, and of the
UCI story label), then reported on the whole files, B-cubed and judged pairs
(bench/pairs/, made by bench/derive_pairs.py).

What it runs, on cached embeddings (``--cache DIR``; embedded once with the project's
Embedder exactly as ``storywatch eval`` does, then reused):
1. ``merges``: the default engine and STORYWATCH_MERGE_BRIDGES x STORYWATCH_MERGE_SCORE,
   B-cubed at arrival and final, pair accuracy, per half and on the whole files.
2. ``learned``: a logistic regression (plain numpy, fixed iterations: bit-for-bit
   reproducible) over the features the engine computes for each candidate story (dense,
   lexical, entity share, no-entities flag, log story size, log hours since the story's last
   and first article, shared term mass), labeled by whether the candidate story's majority
   gold label is the article's, collected along the default engine's own decisions on one
   half; then the engine deciding "join" by p >= cut (``replace``) or the rule AND p >= cut
   (``veto``) on both halves. Not shipped (docs/QUALITY.md says why).

Run: .venv/bin/python bench/quality_experiments.py --cache /tmp/sw-embed [merges|learned]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import load_settings
from streams.engine import clustering
from streams.engine.clustering import ClusterParams, StoryEngine
from streams.engine.embedding import Embedder
from streams.engine.evaluation import score
from streams.engine.offline import EmbeddedStream, cluster_stream, embed_rows, read_jsonl
from streams.engine.pairs import JudgedPair, read_pairs, score_pairs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FILES = {"ecbplus": "ecbplus-dev", "uci": "uci-headlines-dev"}
Part = tuple[EmbeddedStream, dict[str, str], list[JudgedPair]]
Model = tuple[np.ndarray, float, np.ndarray, np.ndarray]  # weights, bias, mean, std


def load(cache: Path) -> dict[tuple[str, Any], Part]:
    settings = load_settings()
    embedder: Embedder | None = None
    parts: dict[tuple[str, Any], Part] = {}
    for name, stem in FILES.items():
        rows = read_jsonl(DATA / f"{stem}.jsonl")
        cached = cache / f"{stem}.pkl"
        if cached.is_file():
            stream = pickle.loads(cached.read_bytes())  # noqa: S301 - our own cache file
        else:
            if embedder is None:
                embedder = Embedder.from_settings(settings)
                embedder.load()
            stream = embed_rows(rows, embedder, max_chars=settings.embed_max_chars, batch_size=32)
            cache.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(pickle.dumps(stream))
        gold = {str(r["id"]): str(r["label"]) for r in rows}
        by_id = {str(r["id"]): r for r in rows}
        pairs = read_pairs(ROOT / "bench" / "pairs" / f"{stem}-pairs.jsonl")
        parts[name, "all"] = (stream, gold, pairs)
        for half in (0, 1):
            keep = [i for i, a in enumerate(stream.articles) if _half(name, by_id[a.id]) == half]
            ids = {stream.articles[i].id for i in keep}
            sub = EmbeddedStream(
                [stream.articles[i] for i in keep],
                stream.vectors[keep],
                [stream.stamps_ms[i] for i in keep],
                [],
                0.0,
            )
            parts[name, half] = (sub, gold, [p for p in pairs if p.a in ids and p.b in ids])
    return parts


def _half(name: str, row: dict[str, Any]) -> int:
    key = str(row["topic"]) if name == "ecbplus" else str(row["label"])
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2


def _measure(part: Part, story_of: dict[str, str]) -> str:
    _, gold, pairs = part
    ids = list(story_of)
    s = score([gold[i] for i in ids], [story_of[i] for i in ids])
    p = score_pairs(pairs, story_of)
    hard = p.accuracy_by_kind.get("same_kind", (0, 0.0))[1]
    return (
        f"F1 {s.f1:.4f} (P {s.precision:.3f} R {s.recall:.3f}) "
        f"pairs {p.accuracy:.4f} hard {hard:.3f}"
    )


def merges(parts: dict[tuple[str, Any], Part]) -> None:
    grid = [(0, 0.8)] + [(k, t) for k in (2, 3, 4) for t in (0.6, 0.7, 0.8, 0.9)]
    for where in (0, 1, "all"):
        print(f"-- part {where}")
        for bridges, bar in grid:
            cells = []
            for name in FILES:
                part = parts[name, where]
                run = cluster_stream(part[0], ClusterParams(merge_bridges=bridges, merge_score=bar))
                arrival = {a.article_id: a.story_id for a in run.assignments}
                cells.append(
                    f"{name}: arrival {_measure(part, arrival)[:9]} final "
                    f"{_measure(part, run.final_story_ids())} merges {len(run.merges)}"
                )
            print(f"bridges {bridges} score {bar}: " + " | ".join(cells), flush=True)


FEATURES = (
    "dense",
    "lexical",
    "entity_share",
    "no_entities",
    "log_size",
    "log_gap_h",
    "log_age_h",
    "shared_mass",
)


def _features(clock: float, story: Any, ev: Any, term_vec: dict[str, float]) -> list[float]:
    share = ev.entity_share
    return [
        ev.dense,
        ev.lexical,
        0.0 if share is None else share,
        1.0 if share is None else 0.0,
        math.log(story.size),
        math.log1p(max(0.0, clock - story.last_seen) / 3600),
        math.log1p(max(0.0, clock - story.first_seen) / 3600),
        sum(w for t, w in term_vec.items() if t in story.terms),
    ]


def _stream_items(stream: EmbeddedStream) -> Any:
    return zip(stream.articles, stream.vectors, stream.stamps_ms, strict=True)


def _run_with(part: Part, weigh: Callable[..., Any], engine: StoryEngine) -> dict[str, str]:
    original = clustering.weigh
    clustering.weigh = weigh  # the experiment swaps the engine's scoring function
    try:
        out = {}
        for article, vector, stamp in _stream_items(part[0]):
            assignment, _ = engine.process(article, vector, stamp / 1000)
            if assignment is not None:
                out[assignment.article_id] = assignment.story_id
        return out
    finally:
        clustering.weigh = original


def _collect(part: Part) -> tuple[np.ndarray, np.ndarray]:
    engine = StoryEngine(ClusterParams())
    original = clustering.weigh
    rows: list[tuple[str, list[float]]] = []

    def weigh(story: Any, dense: float, term_vec: Any, names: Any, params: Any) -> Any:
        ev = original(story, dense, term_vec, names, params)
        rows.append((story.id, _features(engine.clock, story, ev, term_vec)))
        return ev

    labels: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    x_rows, y = [], []
    clustering.weigh = weigh
    try:
        for article, vector, stamp in _stream_items(part[0]):
            rows.clear()
            assignment, _ = engine.process(article, vector, stamp / 1000)
            gold = part[1][article.id]
            for sid, feats in rows:
                top = labels[sid].most_common(1)
                x_rows.append(feats)
                y.append(1.0 if top and top[0][0] == gold else 0.0)
            if assignment is not None:
                labels[assignment.story_id][gold] += 1
    finally:
        clustering.weigh = original
    return np.array(x_rows), np.array(y)


def fit_logistic(x: np.ndarray, y: np.ndarray) -> Model:
    """L2-regularised logistic regression by 3,000 fixed full-batch gradient steps on
    standardised features: no randomness, the same floats on every run."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(3000):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y) / len(y) + 1e-2 * w)
        b -= 0.5 * float((p - y).mean())
    return w, b, mu, sd


def _model_weigh(engine: StoryEngine, model: Model, mode: str, cut: float) -> Callable[..., Any]:
    """The engine's scoring with the join decided by the model (``replace``) or by the rule
    and the model together (``veto``)."""
    original = clustering.weigh
    w, b, mu, sd = model

    def weigh(story: Any, dense: float, term_vec: Any, names: Any, params: Any) -> Any:
        ev = original(story, dense, term_vec, names, params)
        z = (np.array(_features(engine.clock, story, ev, term_vec)) - mu) / sd
        p = 1 / (1 + math.exp(-(float(z @ w) + b)))
        ok = p >= cut if mode == "replace" else ev.accepted and p >= cut
        return ev._replace(accepted=ok)

    return weigh


def learned(parts: dict[tuple[str, Any], Part]) -> None:
    original = clustering.weigh
    for train in (0, 1):
        xs, ys = zip(*(_collect(parts[name, train]) for name in FILES), strict=True)
        w, b, mu, sd = fit_logistic(np.vstack(xs), np.concatenate(ys))
        print(f"-- trained on half {train}: b {b:.3f}")
        print(
            "   weights (standardised):", dict(zip(FEATURES, np.round(w, 3).tolist(), strict=True))
        )
        for mode, cut in (("replace", 0.4), ("replace", 0.5), ("veto", 0.1), ("veto", 0.2)):
            for where in (0, 1, "all"):
                cells = []
                for name in FILES:
                    part = parts[name, where]
                    engine = StoryEngine(ClusterParams())
                    weigh = _model_weigh(engine, (w, b, mu, sd), mode, cut)
                    default = _run_with(part, original, StoryEngine(ClusterParams()))
                    cells.append(
                        f"{name}: default {_measure(part, default)[:9]} "
                        f"model {_measure(part, _run_with(part, weigh, engine))}"
                    )
                print(f"   {mode} p>={cut} part {where}: " + " | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="embeddings cache folder")
    parser.add_argument("what", nargs="*", default=["merges", "learned"])
    args = parser.parse_args()
    parts = load(args.cache)
    for what in args.what:
        {"merges": merges, "learned": learned}[what](parts)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
