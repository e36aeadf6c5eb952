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
3. ``softmax``: a per-decision learned join (conditional logit over the candidate stories plus
   a "new story" option, utility 0), trained on the decisions of two trajectories over one
   half: the default engine's own and an oracle's (the gold join among the same candidates),
   so the model also sees states the engine would not reach. Target: any candidate whose
   majority gold label is the article's, else "new". Features per candidate: dense, lexical,
   entity share, a no-names flag, log size, cosine to the nearest member, shared TF-IDF mass,
   and two times counted in articles (so scaled by the stream's own rate): log articles
   since the story's last and first member. Fitted by fixed full-batch gradient steps on
   standardised features (no randomness: the same floats every run); checked on the other
   half, the whole files and a seeded shuffle of each file (no dates), which tells a rule
   that reads the files' story-by-story order from one that carries over. Also with the
   names check kept as a hard gate (vetoed candidates are no options). Not shipped.
4. ``robust``: the default engine with merges off and on (3 bridges at 0.8) on three seeded
   shuffles of each file.
5. ``convergence``: merges by centroid convergence (one bridge: an allowed candidate whose
   centroid is at cosine >= theta to the joined story's), theta swept. Not shipped.
6. ``radius``: an adaptive join bar per story (the online-clustering radius): a candidate the
   rule rejected on its score joins when the score clears max(floor, mean - k std) of the
   story's members' join scores, once the story has min_joins joins. Not shipped.
7. ``nearest``: a second join path by the dense cosine to the story's closest member (single
   link with a high bar), the names check kept. Not shipped.
8. ``names``: entity-linked merges: two active stories sharing a name held by a share of the
   members of each, rare in the window (IDF), last articles within 24 h, centroids close,
   merge by the engine's own merge step. Not shipped.
6-8 run the default engine (bridge merges on) and add one path each; docs/QUALITY.md
("Sixth session, part two") has the numbers.

Run: .venv/bin/python bench/quality_experiments.py --cache /tmp/sw-embed [merges learned softmax
robust convergence radius nearest names]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import math
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import load_settings
from streams.engine import clustering
from streams.engine.clustering import Assignment, ClusterParams, StoryEngine, StoryMerge
from streams.engine.embedding import Embedder
from streams.engine.evaluation import score
from streams.engine.offline import (
    ClusterRun,
    EmbeddedStream,
    cluster_stream,
    embed_rows,
    read_jsonl,
)
from streams.engine.pairs import JudgedPair, read_pairs, score_pairs
from streams.engine.scoring import JoinEvidence
from streams.engine.vectors import unit
from streams.stages.embed import Limits

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
FILES = {"ecbplus": "ecbplus-dev", "uci": "uci-headlines-dev"}
Part = tuple[EmbeddedStream, dict[str, str], list[JudgedPair]]
# The join experiments compare one decision on arrival: merges off (they follow no merge).
JOIN_ONLY = ClusterParams(merge_bridges=0)
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
                embedder = Embedder.from_settings(settings.embed)
                embedder.load()
            stream = embed_rows(
                rows, embedder, limits=Limits.from_settings(settings.embed), batch_size=32
            )
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
    engine = StoryEngine(JOIN_ONLY)
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
                    engine = StoryEngine(JOIN_ONLY)
                    weigh = _model_weigh(engine, (w, b, mu, sd), mode, cut)
                    default = _run_with(part, original, StoryEngine(JOIN_ONLY))
                    cells.append(
                        f"{name}: default {_measure(part, default)[:9]} "
                        f"model {_measure(part, _run_with(part, weigh, engine))}"
                    )
                print(f"   {mode} p>={cut} part {where}: " + " | ".join(cells), flush=True)


SOFTMAX_FEATURES = (*FEATURES[:5], "nearest_member", "shared_mass", "log_gap_n", "log_age_n")
SOFTMAX_SETS = {  # name -> (columns of SOFTMAX_FEATURES, the names check kept as a hard gate)
    "rule features": ([0, 1, 2, 3], False),
    "+ story features, no time": ([0, 1, 2, 3, 4, 5, 6], False),
    "+ time in articles": (list(range(9)), False),
    "names gate + rule features": ([0, 1, 2, 3], True),
    "names gate + story features, no time": ([0, 1, 2, 3, 4, 5, 6], True),
}
Decision = tuple[np.ndarray, np.ndarray]  # candidates x features, correct (index 0: "new")


def _shuffled(part: Part, seed: int) -> Part:
    """The same articles in a seeded random order, all at one time (dates dropped)."""
    stream, gold, pairs = part
    order = np.random.default_rng(seed).permutation(len(stream.articles))
    return (
        EmbeddedStream(
            [stream.articles[i] for i in order],
            stream.vectors[order],
            [stream.stamps_ms[0]] * len(order),
            [],
            0.0,
        ),
        gold,
        pairs,
    )


def _decide(
    part: Part,
    mode: str,
    model: Model | None = None,
    cols: list[int] | None = None,
    *,
    collect: list[Decision] | None = None,
    gated: bool = False,
) -> dict[str, str]:
    """One pass with the join decided by the rule (``default``), the gold labels among the
    candidates (``oracle``) or the conditional logit (``model``: join the candidate of
    highest utility if it is > 0, the "new" option's). ``collect`` gets every decision."""
    engine = StoryEngine(JOIN_ONLY)
    original = clustering.weigh
    labels: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    members: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    now: dict[str, Any] = {"n": 0}
    rows: list[tuple[str, list[float]]] = []

    def majority(story_id: str) -> str | None:
        top = labels[story_id].most_common(1)
        return top[0][0] if top else None

    def weigh(story: Any, dense: float, term_vec: Any, names: Any, params: Any) -> Any:
        ev = original(story, dense, term_vec, names, params)
        share, n = ev.entity_share, now["n"]
        feats = [
            ev.dense,
            ev.lexical,
            0.0 if share is None else share,
            1.0 if share is None else 0.0,
            math.log(story.size),
            float(np.max(np.stack(members[story.id]) @ now["vec"])),
            sum(w for t, w in term_vec.items() if t in story.terms),
            math.log1p(n - last[story.id]),
            math.log1p(n - first[story.id]),
        ]
        vetoed = (
            share is not None and share < params.entity_share and ev.score < params.entity_override
        )
        if gated and vetoed:  # the names check stays a hard rule; the model decides the rest
            return ev._replace(accepted=False)
        rows.append((story.id, feats))
        if mode == "oracle":
            return ev._replace(accepted=majority(story.id) == now["gold"])
        if mode == "model" and model is not None:
            w, b, mu, sd = model
            utility = float((np.array(feats)[cols] - mu) / sd @ w + b)
            return ev._replace(accepted=utility > 0, score=utility)
        return ev

    clustering.weigh = weigh  # the experiment swaps the engine's scoring function
    out: dict[str, str] = {}
    try:
        for article, vector, stamp in _stream_items(part[0]):
            rows.clear()
            now["vec"], now["gold"] = vector / np.linalg.norm(vector), part[1][article.id]
            assignment, _ = engine.process(article, vector, stamp / 1000)
            if assignment is None:
                continue
            if collect is not None and rows:
                right = [majority(sid) == now["gold"] for sid, _ in rows]
                collect.append((np.array([f for _, f in rows]), np.array([not any(right), *right])))
            sid = assignment.story_id
            labels[sid][now["gold"]] += 1
            members[sid].append(now["vec"])
            first.setdefault(sid, now["n"])
            last[sid] = now["n"]
            out[assignment.article_id] = sid
            now["n"] += 1
    finally:
        clustering.weigh = original
    return out


def fit_conditional_logit(decisions: list[Decision], cols: list[int], steps: int = 2000) -> Model:
    """Maximise the log probability of the correct options (softmax over the candidates'
    utilities w.z + b and 0 for "new") by ``steps`` fixed full-batch gradient steps, L2 0.01,
    on standardised features: no randomness, the same floats on every run."""
    k = max(len(x) for x, _ in decisions)
    z = np.zeros((len(decisions), k, len(cols)))
    mask = np.zeros((len(decisions), k), dtype=bool)
    right = np.zeros((len(decisions), k + 1), dtype=bool)
    for i, (x, c) in enumerate(decisions):
        z[i, : len(x)], mask[i, : len(x)], right[i, : len(c)] = x[:, cols], True, c
    mu, sd = z[mask].mean(0), z[mask].std(0) + 1e-9
    z = np.where(mask[..., None], (z - mu) / sd, 0.0)
    w, b = np.zeros(len(cols)), 0.0
    for _ in range(steps):
        logits = np.concatenate([np.zeros((len(z), 1)), np.where(mask, z @ w + b, -np.inf)], 1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        target = np.where(right, p, 0.0)
        grad = (p - target / target.sum(1, keepdims=True))[:, 1:]
        w -= 0.5 * (np.einsum("nk,nkf->f", grad, z) / len(z) + 1e-2 * w)
        b -= 0.5 * float(grad.sum() / len(z))
    return w, b, mu, sd


def _f1(part: Part, story_of: dict[str, str]) -> float:
    ids = list(story_of)
    return score([part[1][i] for i in ids], [story_of[i] for i in ids]).f1


def softmax(parts: dict[tuple[str, Any], Part]) -> None:
    wheres: list[Any] = [0, 1, "all"]
    for name in FILES:
        cells = [
            f"{where} {_f1(parts[name, where], _decide(parts[name, where], 'default')):.4f}"
            for where in wheres
        ]
        shuffled = _shuffled(parts[name, "all"], 1)
        cells.append(f"shuffled {_f1(shuffled, _decide(shuffled, 'default')):.4f}")
        print(f"-- default rule {name}: " + " ".join(cells), flush=True)
    for train in (0, 1):
        for label, (cols, gated) in SOFTMAX_SETS.items():
            decisions: list[Decision] = []
            for name in FILES:
                for mode in ("oracle", "default"):
                    _decide(parts[name, train], mode, collect=decisions, gated=gated)
            started = time.perf_counter()
            model = fit_conditional_logit(decisions, cols)
            names = [SOFTMAX_FEATURES[c] for c in cols]
            print(
                f"-- trained on half {train} ({len(decisions)} decisions, "
                f"{time.perf_counter() - started:.1f} s), {label}: b {model[1]:.3f}",
                dict(zip(names, np.round(model[0], 3).tolist(), strict=True)),
            )
            cells = []
            for name in FILES:
                for where in wheres:
                    part = parts[name, where]
                    got = _f1(part, _decide(part, "model", model, cols, gated=gated))
                    cells.append(f"{name} {where} {got:.4f}")
                shuffled = _shuffled(parts[name, "all"], 1)
                got = _f1(shuffled, _decide(shuffled, "model", model, cols, gated=gated))
                cells.append(f"{name} shuffled {got:.4f}")
            print("   " + " | ".join(cells), flush=True)


def robust(parts: dict[tuple[str, Any], Part]) -> None:
    for bridges in (0, 3):
        cells = []
        for name in FILES:
            for seed in (1, 2, 3):
                part = _shuffled(parts[name, "all"], seed)
                run = cluster_stream(part[0], ClusterParams(merge_bridges=bridges))
                cells.append(f"{name} seed {seed} {_measure(part, run.final_story_ids())}")
        print(f"bridges {bridges}: " + " | ".join(cells), flush=True)


def _converging(theta: float) -> type[StoryEngine]:
    """The engine with a centroid-convergence merge: a candidate the article was allowed to
    join is a bridge when its centroid and the joined story's (after the join) are at
    cosine >= ``theta`` (instead of the article scoring >= merge_score against it)."""

    class Converging(StoryEngine):
        def _merge_bridged(self, story: Any, article_id: str, evidence: Any, *rest: Any) -> Any:
            centre = unit(story.centroid_sum)
            marked = []
            for ev in evidence:
                other = self.story(ev.story_id)
                near = other is not None and float(centre @ unit(other.centroid_sum)) >= theta
                marked.append(ev._replace(score=2.0 if near else 0.0))  # 2 >= merge_score 1
            return super()._merge_bridged(story, article_id, marked, *rest)

    return Converging


def convergence(parts: dict[tuple[str, Any], Part]) -> None:
    for theta in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        cells = []
        for name in FILES:
            for where in (0, 1, "all", "shuffled"):
                part = (
                    _shuffled(parts[name, "all"], 1) if where == "shuffled" else parts[name, where]
                )
                engine = _converging(theta)(ClusterParams(merge_bridges=1, merge_score=1.0))
                assignments, merged = [], []
                for article, vector, stamp in _stream_items(part[0]):
                    assignment, changes = engine.process(article, vector, stamp / 1000)
                    if assignment is not None:
                        assignments.append(assignment)
                    merged.extend(changes.merges)
                run = ClusterRun(assignments, [], 0.0, 0.0, merged)
                cells.append(
                    f"{name} {where} {_measure(part, run.final_story_ids())} m {len(merged)}"
                )
        print(f"centroids >= {theta}: " + " | ".join(cells), flush=True)


class _StoryStats:
    """Per-story side state of the join-path experiments: running sums of the join scores
    of its members (the founder excluded) and its members' unit vectors."""

    def __init__(self) -> None:
        self.n = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.members: list[np.ndarray] = []

    def radius(self, k: float, floor: float) -> float:
        mean = self.sum / self.n
        std = math.sqrt(max(0.0, self.sum_sq / self.n - mean * mean))
        return max(floor, mean - k * std)

    def absorb(self, other: _StoryStats) -> None:
        self.n += other.n
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.members.extend(other.members)


def _join_path_run(
    part: Part, mode: str, knobs: tuple[float, ...]
) -> tuple[ClusterRun, float, int]:
    """The default engine (merges on) plus one more way to join a candidate the rule rejected
    on its score (never one the names check vetoed):
    ``radius`` (k, floor, min_joins): the score clears the story's own radius,
    max(floor, mean - k std of its members' join scores), once it has min_joins joins;
    ``nearest`` (bar,): the dense cosine to the story's closest member is >= bar.
    Returns the run, the seconds per article and how many joins took the new path."""
    engine = StoryEngine(ClusterParams())
    original = clustering.weigh
    stats: dict[str, _StoryStats] = collections.defaultdict(_StoryStats)
    now: dict[str, Any] = {}

    def weigh(story: Any, dense: float, term_vec: Any, names: Any, params: Any) -> Any:
        ev = original(story, dense, term_vec, names, params)
        share = ev.entity_share
        now["rule"] = now["rule"] or ev.accepted
        if ev.accepted or ev.score >= params.story_threshold:
            return ev  # accepted, or vetoed by the names check: the rule stands
        st = stats[story.id]
        if mode == "radius":
            k, floor, min_joins = knobs
            ok = st.n >= min_joins and ev.score >= st.radius(k, floor)
        else:
            ok = bool(st.members) and float(np.max(np.stack(st.members) @ now["vec"])) >= knobs[0]
        if ok and share is not None and ev.score < params.entity_override:
            ok = share >= params.entity_share
        if ok:
            now["extra"].add(story.id)
        return ev._replace(accepted=ok)

    assignments: list[Assignment] = []
    extra = 0
    merged: list[StoryMerge] = []
    clustering.weigh = weigh  # the experiment swaps the engine's scoring function
    started = time.perf_counter()
    try:
        for article, vector, stamp in _stream_items(part[0]):
            now["vec"], now["extra"], now["rule"] = vector / np.linalg.norm(vector), set(), False
            assignment, changes = engine.process(article, vector, stamp / 1000)
            # Rule-accepted scores are >= the bar, the new path's below it: a join took the
            # new path when the rule accepted no candidate.
            joined = assignment is not None and assignment.decision == "joined"
            extra += joined and not now["rule"] and bool(now["extra"])
            for m in changes.merges:
                stats[m.story_id].absorb(stats.pop(m.absorbed_id))
            merged.extend(changes.merges)
            if assignment is None or assignment.decision == "duplicate":
                if assignment is not None:
                    assignments.append(assignment)
                continue
            assignments.append(assignment)
            st = stats[assignment.story_id]
            if assignment.decision == "joined":
                s = assignment.similarity + engine.params.lexical_weight * (
                    assignment.lexical_similarity
                )
                st.n, st.sum, st.sum_sq = st.n + 1, st.sum + s, st.sum_sq + s * s
            if mode == "nearest":
                st.members.append(now["vec"])
    finally:
        clustering.weigh = original
    seconds = (time.perf_counter() - started) / max(1, len(part[0].articles))
    return ClusterRun(assignments, [], 0.0, 0.0, merged), seconds, extra


JOIN_PATHS: dict[str, list[tuple[float, ...]]] = {
    "radius": [
        (k, floor, n) for k in (1.0, 1.5, 2.0, 2.5) for floor in (0.2, 0.25, 0.3) for n in (4, 9)
    ],
    "nearest": [(b,) for b in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8)],
}


def join_paths(parts: dict[tuple[str, Any], Part], modes: list[str]) -> None:
    """Each variant's final F1 on both halves and whole files (+ pairs on the whole files),
    against the default; the variant to pick is the best mean F1 over both files on a half."""
    wheres: list[Any] = [0, 1, "all"]
    base = {}
    for name in FILES:
        for where in wheres:
            run = cluster_stream(parts[name, where][0], ClusterParams())
            base[name, where] = run
        cells = [f"{w} {_f1(parts[name, w], base[name, w].final_story_ids()):.4f}" for w in wheres]
        print(
            f"-- default {name}: " + " ".join(cells),
            _measure(parts[name, "all"], base[name, "all"].final_story_ids()),
            flush=True,
        )
    for mode in modes:
        for knobs in JOIN_PATHS[mode]:
            cells = []
            for name in FILES:
                for where in wheres:
                    part = parts[name, where]
                    run, per, extra = _join_path_run(part, mode, knobs)
                    final = run.final_story_ids()
                    if where == "all":
                        cells.append(
                            f"{name} all {_measure(part, final)} new-path joins {extra} "
                            f"{per * 1e6:.0f}us"
                        )
                    else:
                        cells.append(f"{name} {where} {_f1(part, final):.4f} ({extra})")
            print(f"{mode} {knobs}: " + " | ".join(cells), flush=True)


def _top_names(story: Any, held: float) -> set[str]:
    """The names at least two and at least a ``held`` share of a story's members mention."""
    least = max(2.0, held * story.size)
    return {name for name, n in story.entities.items() if n >= least}


def _name_merge_run(
    part: Part, held: float, idf_min: float, theta: float, gap_h: float = 24.0
) -> tuple[ClusterRun, float]:
    """The default engine (bridge merges on) plus entity-linked merges: after each article,
    its story merges with an active story with which it shares a top name (one held by a
    ``held`` share of the members of each) that is rare in the window (IDF >= ``idf_min``),
    when their last
    articles are within ``gap_h`` hours and their centroids are at cosine >= ``theta``. The
    merge is the engine's own (one bridge recorded, the smaller story folded in)."""
    engine = StoryEngine(ClusterParams())
    one_bridge = dataclasses.replace(engine.params, merge_bridges=1, merge_score=0.0)
    idf = engine.entity_frequencies.idf
    assignments: list[Assignment] = []
    merged: list[StoryMerge] = []
    started = time.perf_counter()
    for article, vector, stamp in _stream_items(part[0]):
        assignment, changes = engine.process(article, vector, stamp / 1000)
        merged.extend(changes.merges)
        if assignment is None:
            continue
        assignments.append(assignment)
        story = engine.story(assignment.story_id)
        if story is None:
            continue
        rare = {n for n in _top_names(story, held) if idf(n) >= idf_min}
        if not rare:
            continue
        centre = unit(story.centroid_sum)
        for other in list(engine._stories):
            if other is story or not rare & _top_names(other, held):
                continue
            if abs(other.last_seen - story.last_seen) > gap_h * 3600:
                continue
            cos = float(centre @ unit(other.centroid_sum))
            if cos < theta:
                continue
            ev = JoinEvidence(other.id, cos, 0.0, cos, None, True)
            engine.params = one_bridge
            try:
                engine._merge_bridged(story, article.id, [ev], story.last_seen, changes)
            finally:
                engine.params = ClusterParams()
            merged.extend(changes.merges[-1:])
            break
    seconds = (time.perf_counter() - started) / max(1, len(part[0].articles))
    return ClusterRun(assignments, [], 0.0, 0.0, merged), seconds


def name_merges(parts: dict[tuple[str, Any], Part]) -> None:
    """Entity-linked merges swept (held share x IDF floor x centroid bar): final F1 per half
    and whole file, pairs on the whole files, seconds per article; then two settings on three
    seeded shuffles of each whole file."""
    grid = [(h, i, t) for h in (0.25, 0.35, 0.5) for i in (3.0, 4.0) for t in (0.5, 0.6, 0.7)]
    for held, idf_min, theta in grid:
        cells = []
        for name in FILES:
            for where in (0, 1, "all"):
                part = parts[name, where]
                run, per = _name_merge_run(part, held, idf_min, theta)
                final = run.final_story_ids()
                if where == "all":
                    cells.append(
                        f"{name} all {_measure(part, final)} m {len(run.merges)} {per * 1e6:.0f}us"
                    )
                else:
                    cells.append(f"{name} {where} {_f1(part, final):.4f}")
        print(f"names held {held} idf >= {idf_min} cos >= {theta}: " + " | ".join(cells))
    for held, idf_min, theta in ((0.25, 4.0, 0.6), (0.25, 3.0, 0.6)):
        cells = []
        for name in FILES:
            for seed in (1, 2, 3):
                part = _shuffled(parts[name, "all"], seed)
                run, _ = _name_merge_run(part, held, idf_min, theta)
                cells.append(f"{name} seed {seed} {_measure(part, run.final_story_ids())}")
        print(f"names held {held} idf >= {idf_min} cos >= {theta} shuffled: " + " | ".join(cells))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="embeddings cache folder")
    parser.add_argument(
        "what", nargs="*", default=["merges", "learned", "softmax", "robust", "convergence"]
    )
    args = parser.parse_args()
    parts = load(args.cache)
    for what in args.what:
        experiments = {
            "merges": merges,
            "learned": learned,
            "softmax": softmax,
            "robust": robust,
            "convergence": convergence,
            "names": name_merges,
        }
        if what in JOIN_PATHS:
            join_paths(parts, [what])
            continue
        experiments[what](parts)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
