"""Clustering quality: B-cubed precision/recall/F1 (Bagga & Baldwin 1998), AMI and ARI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

__all__ = ["Scores", "bcubed", "score"]


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    ami: float
    ari: float
    stories: int
    gold_stories: int


def bcubed(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 averaged over items."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted labels must have the same length")
    if not gold:
        return 0.0, 0.0, 0.0
    pair_counts = Counter(zip(gold, predicted, strict=True))
    gold_sizes = Counter(gold)
    pred_sizes = Counter(predicted)
    precision = recall = 0.0
    for (g, p), n in pair_counts.items():
        # each of the n items in this cell sees n correct items in its cluster and class
        precision += n * n / pred_sizes[p]
        recall += n * n / gold_sizes[g]
    precision /= len(gold)
    recall /= len(gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def score(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """All the measures ``storywatch eval`` prints."""
    precision, recall, f1 = bcubed(gold, predicted)
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        ami=float(adjusted_mutual_info_score(gold, predicted)),
        ari=float(adjusted_rand_score(gold, predicted)),
        stories=len(set(predicted)),
        gold_stories=len(set(gold)),
    )
