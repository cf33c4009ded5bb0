"""Precision, recall, density, coverage, AuthPct and Vendi against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.metrics import neighbours
from analysis.metrics.metric_authpct import authpct
from analysis.metrics.metric_prdc import precision_recall_density_coverage
from analysis.metrics.metric_vendi import vendi_per_class, vendi_score


def knn_radius(points, i, k) -> float:
    others = sorted(
        math.dist(points[i], points[j]) for j in range(len(points)) if j != i
    )
    return others[k - 1]


def brute_prdc(real, fake, k) -> dict[str, float]:
    """The definitions of Kynkäänniemi et al. and Naeem et al., loop by loop."""
    r_real = [knn_radius(real, i, k) for i in range(len(real))]
    r_fake = [knn_radius(fake, j, k) for j in range(len(fake))]

    def d(a, b):
        return math.dist(a, b)

    precision = np.mean(
        [any(d(f, real[i]) < r_real[i] for i in range(len(real))) for f in fake]
    )
    recall = np.mean(
        [any(d(r, fake[j]) < r_fake[j] for j in range(len(fake))) for r in real]
    )
    density = sum(d(f, real[i]) < r_real[i] for f in fake for i in range(len(real))) / (
        k * len(fake)
    )
    coverage = np.mean(
        [min(d(real[i], f) for f in fake) < r_real[i] for i in range(len(real))]
    )
    return {
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }


@pytest.mark.parametrize(("k", "seed"), [(1, 0), (3, 1), (5, 2)])
def test_prdc_matches_brute_force(k: int, seed: int, monkeypatch) -> None:
    # small blocks, so the block-wise code paths are exercised too
    monkeypatch.setattr(neighbours, "BLOCK_ROWS", 7)
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(30, 3))
    fake = rng.normal(size=(25, 3)) * 1.2 + 0.3
    ours = precision_recall_density_coverage(real, fake, k=k)
    expected = brute_prdc(real, fake, k)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_prdc_of_identical_sets() -> None:
    x = np.random.default_rng(3).normal(size=(50, 4))
    out = precision_recall_density_coverage(x, x, k=3)
    # every sample lies at distance 0 from its own centre
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0


def test_prdc_names_its_minimum() -> None:
    x = np.zeros((6, 2))
    with pytest.raises(ValueError, match="at least 6 generated samples; got 5"):
        precision_recall_density_coverage(x, x[:5], k=5)


def brute_authpct(real, fake) -> float:
    authentic = []
    for f in fake:
        i = min(range(len(real)), key=lambda j: math.dist(f, real[j]))
        own = min(math.dist(real[i], real[j]) for j in range(len(real)) if j != i)
        authentic.append(own < math.dist(f, real[i]))
    return 100 * float(np.mean(authentic))


def test_authpct_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(30, 3))
    assert authpct(real, fake) == pytest.approx(brute_authpct(real, fake), abs=1e-12)
    # exact copies of training samples are never authentic
    assert authpct(real, real[:10]) == 0.0


def eigen_vendi(x: np.ndarray, q: float = 1.0) -> float:
    """Vendi score from the eigenvalues of the full n x n similarity matrix."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(x @ x.T / len(x))
    lam = lam[lam > 1e-15]
    if q == 1:
        return float(np.exp(-(lam * np.log(lam)).sum()))
    if math.isinf(q):
        return float(1 / lam.max())
    return float(((lam**q).sum()) ** (1 / (1 - q)))


@pytest.mark.parametrize(("n", "d"), [(12, 30), (60, 5)])
@pytest.mark.parametrize("q", [1.0, 2.0, 0.5, math.inf])
def test_vendi_matches_eigenvalue_definition(n: int, d: int, q: float) -> None:
    x = np.random.default_rng(n + d).normal(size=(n, d))
    assert vendi_score(x, q=q) == pytest.approx(eigen_vendi(x, q), rel=1e-9)


def test_vendi_extremes() -> None:
    assert vendi_score(np.ones((10, 3))) == pytest.approx(1.0)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)


def test_vendi_per_class() -> None:
    x = np.vstack([np.eye(4), np.ones((3, 4))])
    labels = ["a"] * 4 + ["b"] * 3
    scores = vendi_per_class(x, labels)
    assert scores == pytest.approx({"a": 4.0, "b": 1.0})
    with pytest.warns(UserWarning, match="left out 1 samples without a class"):
        vendi_per_class(x, ["a"] * 4 + ["b", "b", ""])
    with pytest.raises(ValueError, match="one label per sample"):
        vendi_per_class(x, ["a"])
