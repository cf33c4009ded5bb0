"""Kernel distance and Inception Score against direct implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from analysis.metrics.metric_is import inception_score
from analysis.metrics.metric_kd import kernel_distance, mmd2_unbiased


def brute_mmd2(x, y, degree=3, coef0=1.0) -> float:
    """Unbiased polynomial-kernel MMD² with explicit loops over pairs."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def test_mmd2_matches_explicit_pair_loops() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(15, 4)), rng.normal(size=(15, 4)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(brute_mmd2(x, y), rel=1e-12)
    assert mmd2_unbiased(x, y, degree=2, coef0=0.5) == pytest.approx(
        brute_mmd2(x, y, degree=2, coef0=0.5), rel=1e-12
    )


def test_kd_with_whole_sets_as_subsets_is_the_full_mmd() -> None:
    # each subset is a permutation of the whole set, so every estimate is equal
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) * 1.5
    value, spread = kernel_distance(x, y, subsets=4, subset_size=20)
    assert value == pytest.approx(brute_mmd2(x, y), rel=1e-10)
    assert spread < 1e-12


def test_kd_subsets_of_unequal_sets() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(18, 3)) + 0.3
    value, _ = kernel_distance(x, y, subsets=5, subset_size=100, seed=9)

    draw = np.random.default_rng(9)
    expected = []
    for _ in range(5):
        xs = x[draw.choice(30, size=18, replace=False)]
        ys = y[draw.choice(18, size=18, replace=False)]
        expected.append(brute_mmd2(xs, ys))
    assert value == pytest.approx(np.mean(expected), rel=1e-10)


def test_kd_is_near_zero_for_one_distribution_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, _ = kernel_distance(x, y, subsets=20, subset_size=200, seed=1)
    shifted, _ = kernel_distance(x, y + 1, subsets=20, subset_size=200, seed=1)
    assert abs(same) < 0.05 < shifted
    assert kernel_distance(x, y, subsets=3, seed=4) == kernel_distance(
        x, y, subsets=3, seed=4
    )


def test_kd_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="KD needs at least 2 generated"):
        kernel_distance(np.ones((5, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="kd_subsets must be a whole number >= 1"):
        kernel_distance(np.ones((5, 2)), np.ones((5, 2)), subsets=0)


def direct_is(logits: np.ndarray, splits: int, seed: int) -> float:
    """IS from its definition with scipy's KL divergence."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p = p[np.random.default_rng(seed).permutation(len(p))]
    part = len(p) // splits
    scores = []
    for k in range(splits):
        chunk = p[k * part : (k + 1) * part]
        marginal = chunk.mean(axis=0)
        scores.append(math.exp(np.mean([entropy(row, marginal) for row in chunk])))
    return float(np.mean(scores))


def test_is_matches_its_definition() -> None:
    logits = np.random.default_rng(5).normal(size=(60, 7)) * 3
    value, _ = inception_score(logits, splits=3, seed=2)
    assert value == pytest.approx(direct_is(logits, 3, 2), rel=1e-10)


def test_is_extremes() -> None:
    # the same prediction for every image: IS = 1
    flat = np.tile(np.array([[2.0, 1.0, 0.0]]), (30, 1))
    assert inception_score(flat, splits=3)[0] == pytest.approx(1.0)
    # confident, evenly spread predictions over 5 classes: IS = 5
    sharp = np.eye(5)[np.arange(50) % 5] * 1000.0
    value, _ = inception_score(sharp, splits=1)
    assert value == pytest.approx(5.0, rel=1e-9)


def test_is_names_its_minimum() -> None:
    with pytest.raises(ValueError, match="IS needs at least 10 generated"):
        inception_score(np.zeros((9, 4)), splits=10)
