"""B-cubed on hand-computed examples; AMI/ARI on the trivial cases."""

from __future__ import annotations

import pytest

from streams.engine.evaluation import bcubed, score


def test_bcubed_hand_computed() -> None:
    gold = ["a", "a", "b", "b"]
    pred = ["x", "x", "x", "y"]
    # Precision per item: |same pred cluster and same gold class| / |pred cluster|
    #   item1 (a,x): {1,2} of x={1,2,3} -> 2/3;  item2: 2/3;  item3 (b,x): {3} of 3 -> 1/3;
    #   item4 (b,y): {4} of y={4} -> 1.   P = (2/3 + 2/3 + 1/3 + 1) / 4 = (8/3)/4 = 2/3
    # Recall per item: |same gold class and same pred cluster| / |gold class|
    #   item1: {1,2} of a={1,2} -> 1;  item2: 1;  item3: {3} of b={3,4} -> 1/2;  item4: 1/2.
    #   R = (1 + 1 + 1/2 + 1/2) / 4 = 3/4
    # F1 = 2PR/(P+R) = 2 * 1/2 / (17/12) = 12/17
    p, r, f = bcubed(gold, pred)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(3 / 4)
    assert f == pytest.approx(12 / 17)


def test_bcubed_second_example() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["1", "1", "2", "2", "2", "2"]
    # Precision: items 1,2 in cluster 1={1,2}, both a -> 1 each.
    #   cluster 2 = {3,4,5,6}: item3 (a) -> 1/4; items 4,5 (b) -> 2/4 each; item6 (c) -> 1/4.
    #   P = (1 + 1 + 1/4 + 1/2 + 1/2 + 1/4) / 6 = 3.5 / 6 = 7/12
    # Recall: class a = {1,2,3}: items 1,2 share cluster 1 -> 2/3 each; item3 -> 1/3.
    #   class b = {4,5} both in 2 -> 1 each; class c = {6} -> 1.
    #   R = (2/3 + 2/3 + 1/3 + 1 + 1 + 1) / 6 = (5/3 + 3) / 6 = (14/3)/6 = 7/9
    # F1 = 2 * 7/12 * 7/9 / (7/12 + 7/9) = (49/54) / (49/36) = 36/54 = 2/3
    p, r, f = bcubed(gold, pred)
    assert p == pytest.approx(7 / 12)
    assert r == pytest.approx(7 / 9)
    assert f == pytest.approx(2 / 3)


def test_perfect_clustering_scores_one_whatever_the_labels() -> None:
    gold = ["a", "a", "b", "c", "c", "c"]
    pred = ["s9", "s9", "s1", "s5", "s5", "s5"]
    assert bcubed(gold, pred) == pytest.approx((1.0, 1.0, 1.0))
    s = score(gold, pred)
    assert (s.precision, s.recall, s.f1) == pytest.approx((1.0, 1.0, 1.0))
    assert s.ami == pytest.approx(1.0)
    assert s.ari == pytest.approx(1.0)
    assert (s.stories, s.gold_stories) == (3, 3)


def test_all_singletons() -> None:
    gold = ["a", "a", "a", "b"]
    pred = ["1", "2", "3", "4"]
    # Every cluster is pure -> P = 1.
    # Recall: items of a={1,2,3} each find only themselves -> 1/3 each; item4 (b={4}) -> 1.
    #   R = (1/3 * 3 + 1) / 4 = 2/4 = 1/2.   F1 = 2 * 1 * 1/2 / (3/2) = 2/3
    p, r, f = bcubed(gold, pred)
    assert p == pytest.approx(1.0)
    assert r == pytest.approx(0.5)
    assert f == pytest.approx(2 / 3)


def test_one_big_cluster() -> None:
    gold = ["a", "a", "b", "c"]
    pred = ["x"] * 4
    # Recall 1; precision: items of a -> 2/4 each, b -> 1/4, c -> 1/4: (1/2+1/2+1/4+1/4)/4 = 3/8
    p, r, _ = bcubed(gold, pred)
    assert p == pytest.approx(3 / 8)
    assert r == pytest.approx(1.0)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same length"):
        bcubed(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="same length"):
        score(["a"], ["x", "y"])


def test_score_counts_stories() -> None:
    s = score(["a", "a", "b", "b"], ["x", "x", "x", "y"])
    assert (s.stories, s.gold_stories) == (2, 2)
    assert s.precision == pytest.approx(2 / 3)
    assert s.ari < 1.0
    assert s.ami < 1.0
