"""Fréchet distance and FD_inf against reference formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from analysis.metrics.metric_fd import (
    FrechetReference,
    fd_infinity,
    fd_subset_sizes,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_stats,
)


def sqrtm_fd(mu1, sigma1, mu2, sigma2) -> float:
    """Test oracle: the classic FID formula with scipy.linalg.sqrtm."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real)
    return float(diff @ diff + trace)


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fd_matches_sqrtm_on_random_256d_covariances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = 256
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    sigma1, sigma2 = random_covariance(rng, d), random_covariance(rng, d)

    ours = frechet_distance_from_stats(mu1, sigma1, mu2, sigma2)
    oracle = sqrtm_fd(mu1, sigma1, mu2, sigma2)
    assert abs(ours - oracle) / abs(oracle) < 1e-9


def test_fd_of_a_set_with_itself_is_zero() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 256)) @ rng.normal(size=(256, 256)) / 16
    assert abs(frechet_distance(x, x)) < 1e-9
    mu, sigma = feature_statistics(x)
    assert abs(frechet_distance_from_stats(mu, sigma, mu, sigma)) < 1e-9


def test_fd_of_shifted_gaussians_is_the_squared_shift() -> None:
    # equal covariances: FD reduces to the squared distance of the means
    rng = np.random.default_rng(4)
    sigma = random_covariance(rng, 16)
    mu = rng.normal(size=16)
    value = frechet_distance_from_stats(mu, sigma, mu + 0.5, sigma)
    assert value == pytest.approx(16 * 0.25, rel=1e-10)


def test_low_rank_path_matches_the_other_symmetric_form() -> None:
    # m - 1 < d generated samples: compare with tr sqrt(S2^1/2 S1 S2^1/2), the
    # same eigenvalues reached from the other side through S2's exact SVD
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 100)) @ rng.normal(size=(100, 100))
    y = rng.normal(size=(30, 100)) * 2 + 1
    mu1, sigma1 = feature_statistics(x)
    mu2 = y.mean(axis=0)
    _, s, vt = np.linalg.svd((y - mu2) / np.sqrt(len(y) - 1), full_matrices=False)
    small = (s[:, None] * (vt @ sigma1 @ vt.T)) * s[None, :]
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum()
    diff = mu1 - mu2
    expected = diff @ diff + np.trace(sigma1) + (s**2).sum() - 2 * trace_sqrt

    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_low_rank_reference_matches_full_reference() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 60))
    y = rng.normal(size=(200, 60)) + 0.3
    low_rank = FrechetReference.from_features(x)  # n - 1 < d: SVD route
    full = FrechetReference.from_stats(*feature_statistics(x))
    # the eigh route sees rounding-level eigenvalues (~1e-15) where the exact
    # ones are 0, and their square roots (~3e-8) add up: agreement is ~1e-8
    assert low_rank.distance_to_features(y) == pytest.approx(
        full.distance_to_features(y), rel=1e-7
    )


def test_fd_inf_is_the_intercept_of_the_fit_over_subset_sizes() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 8))
    y = rng.normal(size=(200, 8)) + 0.2
    value = fd_infinity(x, y, points=6, seed=11)

    # the same subsets, drawn again from the same seed
    draw = np.random.default_rng(11)
    sizes = fd_subset_sizes(len(y), 6)
    fds = [
        frechet_distance(x, y[draw.choice(len(y), size=int(n), replace=False)])
        for n in sizes
    ]
    slope, intercept = np.polyfit(1 / sizes, fds, 1)
    assert value == pytest.approx(intercept, rel=1e-12)
    assert slope > 0  # FD_N shrinks as N grows
    assert value < frechet_distance(x, y)


def test_fd_inf_is_deterministic_under_a_seed() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(80, 4))
    assert fd_infinity(x, y, seed=1) == fd_infinity(x, y, seed=1)
    assert fd_infinity(x, y, seed=1) != fd_infinity(x, y, seed=2)


def test_subset_sizes_follow_the_reference_schedule() -> None:
    sizes = fd_subset_sizes(50000, 15)
    assert sizes[0] == 5000 and sizes[-1] == 50000 and len(sizes) == 15
    assert fd_subset_sizes(30, 15)[0] == 3


@pytest.mark.parametrize(
    ("real", "generated", "message"),
    [
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 real samples"),
        (np.ones((5, 3)), np.ones((5, 4)), "dimensions differ"),
        (np.ones((5, 3)), np.full((5, 3), np.nan), "NaN"),
        (np.ones(5), np.ones((5, 3)), "2-D"),
    ],
)
def test_fd_refuses_bad_input(real, generated, message) -> None:
    with pytest.raises(ValueError, match=message):
        frechet_distance(real, generated)


def test_fd_inf_names_its_minimum() -> None:
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="FD_inf needs at least 10 generated"):
        fd_infinity(x, x[:9])
