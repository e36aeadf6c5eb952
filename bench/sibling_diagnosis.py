"""Why the engine joins sibling events: which mechanism turns a "different events" pair into a join.

Why: issue 23 reports the engine below a plain cosine threshold on judged "different events"
pairs. This script takes the default engine apart on the labeled dev files, per half (halves
as in bench/encoder_quality.py) and on the whole files:

1. ``kinds``: pair accuracy by kind (same event, sibling event of the same kind, other kind)
   for the engine and for a plain cosine threshold chosen on half 0 (the best there);
2. ``blame``: every wrong "different events" pair, put together by a join (both articles
   joined the same story at arrival) or by a story merge; every impure join (an article
   joining a story whose members are mostly another event), and the seeds among them (the
   first article of an event to enter another event's story), with their evidence;
3. ``ablate``: each engine mechanism turned off in turn (lexical bonus, the names override,
   merges, the names check), B-cubed F1 / pair accuracy / sibling-pair accuracy per half;
4. ``auc``: how well pair-level signals separate same-event from sibling pairs (ROC AUC):
   cosine, the share of one article's names the other mentions (what the engine's names
   check reads), the two-way (Jaccard) names overlap, and cosine + Jaccard standardised on
   half 0;
5. ``members``: research, not in the engine: a second names check, against the story's
   members rather than its name profile (the best IDF-weighted Jaccard between the article's
   names and one member's, over members with enough names, must reach a bar), bars swept;
   the engine's own decisions otherwise (its ``weigh`` wrapped for the run).

Gold labels are used only to score. Embeddings come from the same cache as
bench/encoder_quality.py (``--cache DIR``).

Run: .venv/bin/python bench/sibling_diagnosis.py --cache /tmp/sw-enc [kinds blame ablate auc]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from encoder_quality import (  # noqa: E402
    FILES,
    WHERE,
    Part,
    best_cosine_threshold,
    load,
    measure,
    pair_cosines,
)

from streams.engine import clustering  # noqa: E402
from streams.engine.evaluation import score  # noqa: E402
from streams.engine.evidence import entities  # noqa: E402
from streams.engine.offline import ClusterRun, cluster_stream  # noqa: E402
from streams.engine.pairs import score_pairs  # noqa: E402
from streams.engine.params import ClusterParams  # noqa: E402
from streams.engine.scoring import JoinEvidence  # noqa: E402
from streams.engine.story_state import Story  # noqa: E402

KINDS = ("same", "same_kind", "other_kind")
ABLATIONS = {
    "default": ClusterParams(),
    "no lexical bonus": ClusterParams(lexical_weight=0.0),
    "no names override": ClusterParams(entity_override=2.0),
    "no merges": ClusterParams(merge_bridges=0),
    "no names check": ClusterParams(entity_share=0.0),
}


def kinds(parts: dict[tuple[str, object], Part]) -> None:
    for name in FILES:
        t = best_cosine_threshold([parts[name, 0]])
        for where in WHERE:
            cos, same, kind = pair_cosines(parts[name, where])
            kind_arr = np.array(kind)
            right = (cos >= t) == same
            plain = " ".join(f"{k} {right[kind_arr == k].mean():.3f}" for k in KINDS)
            stream, _, pairs = parts[name, where]
            run = cluster_stream(stream, ClusterParams())
            scores = score_pairs(pairs, run.final_story_ids())
            engine = " ".join(f"{k} {scores.accuracy_by_kind[k][1]:.3f}" for k in KINDS)
            print(
                f"{name} {where}: plain cosine t {t:.3f} (chosen on h0): all {right.mean():.4f} "
                f"{plain} | engine: all {scores.accuracy:.4f} {engine}"
            )


def blame(parts: dict[tuple[str, object], Part]) -> None:
    for name in FILES:
        for where in WHERE:
            stream, gold, pairs = parts[name, where]
            run = cluster_stream(stream, ClusterParams())
            final = run.final_story_ids()
            arrival = {a.article_id: a.story_id for a in run.assignments}
            wrong = [
                p
                for p in pairs
                if not p.same_story and p.a in final and p.b in final and final[p.a] == final[p.b]
            ]
            by_merge = sum(arrival[p.a] != arrival[p.b] for p in wrong)
            members: dict[str, list[str]] = defaultdict(list)
            impure = seeds = overridden = 0
            seed_dense: list[float] = []
            for a in run.assignments:
                if a.decision == "joined":
                    labels = Counter(gold[m] for m in members[a.story_id])
                    majority = labels.most_common(1)[0][0]
                    if gold[a.article_id] != majority:
                        impure += 1
                        if gold[a.article_id] not in labels:
                            seeds += 1
                            seed_dense.append(a.similarity)
                            share = a.entity_share
                            overridden += share is not None and share < ClusterParams().entity_share
                members[a.story_id].append(a.article_id)
            print(
                f"{name} {where}: wrong different-event pairs {len(wrong)} (by a merge "
                f"{by_merge}, by joins {len(wrong) - by_merge}); impure joins {impure}, "
                f"seeds {seeds} (dense cosine to the story: median "
                f"{np.median(seed_dense) if seed_dense else 0:.3f}, min "
                f"{min(seed_dense, default=0):.3f}; let in by the names override: {overridden})"
            )


def ablate(parts: dict[tuple[str, object], Part]) -> None:
    print("F1 / pairs / sibling pairs; ECB+ h0 | h1 | all | UCI h0 | h1 | all")
    for label, params in ABLATIONS.items():
        cells = []
        for name in FILES:
            for where in WHERE:
                m = measure(parts[name, where], params)
                cells.append(f"{m['f1']:.4f} / {m['pairs']:.4f} / {m['hard']:.3f}")
        print(f"  {label}: " + " | ".join(cells), flush=True)


def _auc(labels: np.ndarray, values: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties counted half)."""
    pos, neg = values[labels], values[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def auc(parts: dict[tuple[str, object], Part]) -> None:
    for name in FILES:
        stream, _, _ = parts[name, "all"]
        row = {a.id: i for i, a in enumerate(stream.articles)}
        names = [entities(a.title, a.text) for a in stream.articles]
        counts = Counter(n for found in names for n in found)
        docs = len(names)

        def weight(found: set[str], docs: int = docs, counts: Counter[str] = counts) -> float:
            return sum(math.log((docs + 1) / (counts[n] + 0.5)) for n in found)

        stats: tuple[float, float, float, float] | None = None
        for half in (0, 1):
            _, _, pairs = parts[name, half]
            hard = [p for p in pairs if p.kind in ("same", "same_kind")]
            same = np.array([p.same_story for p in hard])
            cos = np.array(
                [float(stream.vectors[row[p.a]] @ stream.vectors[row[p.b]]) for p in hard]
            )
            one_way, jaccard = [], []
            for p in hard:
                first, later = sorted((row[p.a], row[p.b]))
                a, b = names[later], names[first]
                shared = weight(a & b)
                one_way.append(shared / (weight(a) or 1.0))
                jaccard.append(shared / (weight(a | b) or 1.0))
            jac = np.array(jaccard)
            if stats is None:  # standardised on half 0, read on both
                stats = (cos.mean(), cos.std() or 1.0, jac.mean(), jac.std() or 1.0)
            both = (cos - stats[0]) / stats[1] + (jac - stats[2]) / stats[3]
            print(
                f"{name} h{half} (same vs sibling pairs, {len(hard)}): AUC cosine "
                f"{_auc(same, cos):.4f}, names one-way {_auc(same, np.array(one_way)):.4f}, "
                f"names Jaccard {_auc(same, jac):.4f}, cosine + Jaccard {_auc(same, both):.4f}"
            )


def _member_run(part: Part, bar: float) -> ClusterRun:
    """One pass of the default engine whose names check reads the best member's Jaccard."""
    stream, _, _ = part
    params = ClusterParams()
    engine = clustering.StoryEngine(params)
    members: dict[str, list[set[str]]] = defaultdict(list)
    plain_weigh = clustering.weigh

    def weigh(
        story: Story,
        dense: float,
        term_vec: dict[str, float],
        names: dict[str, float],
        params: ClusterParams,
    ) -> JoinEvidence:
        evidence = plain_weigh(story, dense, term_vec, names, params)
        if not names or not evidence.accepted or evidence.score >= params.entity_override:
            return evidence
        idf = engine.entity_frequencies.idf
        mine = sum(names.values())
        best = 0.0
        for member in members[story.id]:
            if len(member) < params.entity_min:
                continue
            shared = sum(w for n, w in names.items() if n in member)
            rest = sum(idf(n) for n in member if n not in names)
            best = max(best, shared / (mine + rest))
        return evidence._replace(accepted=best >= bar, entity_share=best)

    assignments, merges = [], []
    clustering.weigh = weigh  # type: ignore[assignment]
    try:
        for article, vector, stamp in zip(
            stream.articles, stream.vectors, stream.stamps_ms, strict=True
        ):
            assignment, changes = engine.process(article, vector, stamp / 1000.0)
            if assignment is None:
                continue
            assignments.append(assignment)
            merges.extend(changes.merges)
            story_id = assignment.story_id
            for merge in changes.merges:
                members[merge.story_id].extend(members.pop(merge.absorbed_id, []))
                story_id = merge.story_id
            members[story_id].append(set(entities(article.title, article.text)))
    finally:
        clustering.weigh = plain_weigh
    return ClusterRun(assignments, [], 0.0, 0.0, merges)


def members(parts: dict[tuple[str, object], Part]) -> None:
    print("F1 / pairs / sibling pairs; ECB+ h0 | h1 | all | UCI h0 | h1 | all")
    for bar in (0.03, 0.05, 0.08, 0.12):
        cells = []
        for name in FILES:
            for where in WHERE:
                part = parts[name, where]
                final = _member_run(part, bar).final_story_ids()
                _, gold, pairs = part
                ids = list(final)
                b3 = score([gold[i] for i in ids], [final[i] for i in ids])
                judged = score_pairs(pairs, final)
                hard = judged.accuracy_by_kind["same_kind"][1]
                cells.append(f"{b3.f1:.4f} / {judged.accuracy:.4f} / {hard:.3f}")
        print(f"  best member's names Jaccard >= {bar}: " + " | ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("what", nargs="*", default=["kinds", "blame", "ablate", "auc"])
    args = parser.parse_args()
    parts = load(args.cache, args.model)
    steps = {"kinds": kinds, "blame": blame, "ablate": ablate, "auc": auc, "members": members}
    for what in args.what:
        print(f"== {what} ({args.model})", flush=True)
        steps[what](parts)


if __name__ == "__main__":
    main()
