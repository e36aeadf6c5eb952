"""Judged article pairs: ``{a, b, same_story}`` lines scored against a clustering.

A pair file sits next to a documents file (``a`` and ``b`` are its article ids). The hard
pairs are two *different* events of the same kind (same ECB+ topic, same UCI category): a
clustering that merges them loses precision on the "different events" side, which B-cubed
over a whole file can hide. :func:`derive_pairs` makes such a file from a labeled
documents file, deterministically (a seeded generator over the rows in file order).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.exceptions import InputFileError

__all__ = ["JudgedPair", "PairScores", "derive_pairs", "read_pairs", "score_pairs"]

# The fields a documents file may use to say what *kind* of event an article reports:
# ECB+ "topic" (two events per topic), UCI "category" (business, tech, ...).
KIND_FIELDS = ("topic", "category")


@dataclass(frozen=True, slots=True)
class JudgedPair:
    a: str
    b: str
    same_story: bool
    kind: str = ""  # "same", "same_kind" (hard: other event, same kind), "other_kind"


@dataclass(frozen=True, slots=True)
class PairScores:
    pairs: int
    accuracy: float
    different_precision: float  # of the pairs put in different stories, truly different
    different_recall: float  # of the truly different pairs, put in different stories
    accuracy_by_kind: dict[str, tuple[int, float]]  # kind -> (pairs, accuracy)
    missing: int  # pairs naming an article the clustering did not assign (skipped)


def read_pairs(path: Path) -> list[JudgedPair]:
    """The judged pairs of a JSONL file; a bad line is one clear :class:`InputFileError`."""
    if not path.is_file():
        raise InputFileError(
            f"{path}: no such file; pass a JSON-lines file of {{a, b, same_story}} lines"
        )
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pairs.append(
                    JudgedPair(
                        str(row["a"]), str(row["b"]), bool(row["same_story"]), row.get("kind", "")
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputFileError(
                    f"{path}:{number}: not a judged pair ({exc}); each line must be a JSON "
                    'object {"a": id, "b": id, "same_story": true|false}'
                ) from exc
    return pairs


def score_pairs(pairs: Sequence[JudgedPair], story_of: Mapping[str, str]) -> PairScores:
    """Accuracy of "same story" per pair, and precision/recall of "different stories"."""
    right = predicted_diff = true_diff = both_diff = missing = 0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pair in pairs:
        if pair.a not in story_of or pair.b not in story_of:
            missing += 1
            continue
        same = story_of[pair.a] == story_of[pair.b]
        correct = same == pair.same_story
        right += correct
        predicted_diff += not same
        true_diff += not pair.same_story
        both_diff += (not same) and (not pair.same_story)
        counts = by_kind[pair.kind]
        counts[0] += 1
        counts[1] += correct
    judged = len(pairs) - missing
    return PairScores(
        pairs=judged,
        accuracy=right / judged if judged else 0.0,
        different_precision=both_diff / predicted_diff if predicted_diff else 0.0,
        different_recall=both_diff / true_diff if true_diff else 0.0,
        accuracy_by_kind={k: (n, ok / n) for k, (n, ok) in sorted(by_kind.items())},
        missing=missing,
    )


def derive_pairs(
    rows: Sequence[Mapping[str, Any]], *, per_kind: int, seed: int
) -> list[JudgedPair]:
    """Up to ``per_kind`` pairs of each kind from labeled rows: two articles of one story
    ("same"), of two stories of one kind ("same_kind", the hard negatives) and of two kinds
    ("other_kind"). Deterministic for a given file, ``per_kind`` and ``seed``."""
    labeled = [(str(r["id"]), str(r["label"]), _kind(r)) for r in rows if r.get("label")]
    by_label: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for aid, label, kind in labeled:
        by_label[label].append(aid)
        by_kind[kind].append((aid, label))
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    out: dict[str, set[tuple[str, str]]] = {"same": set(), "same_kind": set(), "other_kind": set()}
    labels = sorted(by_label)
    kinds = sorted(k for k in by_kind if len({lbl for _, lbl in by_kind[k]}) > 1)
    # Bounded tries: a small file may not hold per_kind distinct pairs of a kind.
    for _ in range(per_kind * 20):
        if len(out["same"]) >= per_kind:
            break
        members = by_label[rng.choice(labels)]
        if len(members) > 1:
            a, b = rng.sample(members, 2)
            out["same"].add((min(a, b), max(a, b)))
    for _ in range(per_kind * 20):
        if len(out["same_kind"]) >= per_kind or not kinds:
            break
        pool = by_kind[rng.choice(kinds)]
        (a, la), (b, lb) = rng.sample(pool, 2)
        if la != lb:
            out["same_kind"].add((min(a, b), max(a, b)))
    all_kinds = sorted(by_kind)
    for _ in range(per_kind * 20):
        if len(out["other_kind"]) >= per_kind or len(all_kinds) < 2:
            break
        ka, kb = rng.sample(all_kinds, 2)
        a, _ = rng.choice(by_kind[ka])
        b, _ = rng.choice(by_kind[kb])
        out["other_kind"].add((min(a, b), max(a, b)))
    return [
        JudgedPair(a, b, kind == "same", kind)
        for kind in ("same", "same_kind", "other_kind")
        for a, b in sorted(out[kind])
    ]


def _kind(row: Mapping[str, Any]) -> str:
    for name in KIND_FIELDS:
        if row.get(name) is not None:
            return str(row[name])
    return ""
