"""The data-copying test statistic C_T (Meehan, Chaudhuri & Dasgupta 2020)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import mannwhitneyu

from analysis.metrics.checks import as_features, positive_int, same_dims
from analysis.metrics.neighbours import distances, nearest


def pca_projection(
    train: NDArray[np.float64], dims: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and the top ``dims`` principal axes (d x dims) of the training set."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    return mean, vt[:dims].T


def kmeans(
    x: NDArray[np.float64],
    k: int,
    *,
    seed: int = 0,
    restarts: int = 10,
    steps: int = 300,
) -> NDArray[np.float64]:
    """Cluster centres of ``x`` by Lloyd's algorithm with k-means++ starts.

    The run with the lowest within-cluster sum of squares over ``restarts``
    seeded starts is kept. A cluster that empties is re-seeded at the point
    farthest from its centre.
    """
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(restarts):
        centres = _kmeans_pp(x, k, rng)
        for _ in range(steps):
            assign = distances(x, centres).argmin(axis=1)
            moved = centres.copy()
            for c in range(k):
                members = x[assign == c]
                if len(members):
                    moved[c] = members.mean(axis=0)
                else:
                    far = distances(x, centres).min(axis=1).argmax()
                    moved[c] = x[far]
            if np.allclose(moved, centres, rtol=0, atol=1e-12):
                break
            centres = moved
        inertia = float((distances(x, centres).min(axis=1) ** 2).sum())
        runs.append((inertia, centres))
    # lowest inertia; the first such run on ties
    return min(runs, key=lambda run: run[0])[1]


def _kmeans_pp(x: NDArray[np.float64], k: int, rng: np.random.Generator):
    centres = [x[rng.integers(x.shape[0])]]
    for _ in range(1, k):
        d2 = distances(x, np.asarray(centres)).min(axis=1) ** 2
        total = d2.sum()
        p = d2 / total if total > 0 else None
        centres.append(x[rng.choice(x.shape[0], p=p)])
    return np.asarray(centres)


def _z_u(test_dist: NDArray[np.float64], generated_dist: NDArray[np.float64]) -> float:
    """Z-scored Mann-Whitney U of generated vs test nearest-train distances."""
    m, n = len(generated_dist), len(test_dist)
    u = mannwhitneyu(generated_dist, test_dist, alternative="less").statistic
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def c_t(
    train: ArrayLike,
    test: ArrayLike,
    generated: ArrayLike,
    *,
    cells: int = 3,
    pca_dims: int = 64,
    min_generated: int = 20,
    seed: int = 0,
) -> float:
    """Data-copying test statistic C_T.

    Parameters
    ----------
    train : array_like, shape (l, d)
        Features of the generative model's training images (the real set).
    test : array_like, shape (n, d)
        Features of held-out real images from the same distribution.
    generated : array_like, shape (m, d)
        Features of generated images.
    cells : int
        Number of k-means cells the space is partitioned into (fitted on the
        training set).
    pca_dims : int
        Features with more dimensions are first projected on the training
        set's top principal axes.
    min_generated : int
        A cell takes part only if it holds more than this many generated
        samples (dgm-eval: tau = 20 / m).
    seed : int
        Seed of the k-means starts.

    Returns
    -------
    float
        A z-score. Near 0: generated samples are as far from the training set
        as held-out data; below 0: closer (data copying); above 0: farther
        (under-fitting).

    Notes
    -----
    In each cell :math:`\\pi`, let :math:`L(P_n)` and :math:`L(Q_m)` be the
    distances of the test and generated samples to their nearest training
    sample of the cell, :math:`U` the Mann-Whitney statistic of
    :math:`L(Q_m)` against :math:`L(P_n)`, and
    :math:`Z_U(\\pi)=(U - mn/2)/\\sqrt{mn(m+n+1)/12}`. Then
    :math:`C_T = \\sum_{\\pi\\in\\Pi_\\tau} P_n(\\pi) Z_U(\\pi) /
    \\sum_{\\pi\\in\\Pi_\\tau} P_n(\\pi)`, with :math:`P_n(\\pi)` the share
    of test samples in the cell and :math:`\\Pi_\\tau` the cells with enough
    generated samples. The Z-score has no continuity correction (the
    reference code shifts the mean by 0.5, a change of 0.5/σ).
    In R, per cell: ``wilcox.test(lq, lp, alternative = "less")``.

    References
    ----------
    Meehan, Chaudhuri & Dasgupta, "A non-parametric test to detect
    data-copying in generative models", AISTATS 2020.
    """
    cells = positive_int(cells, name="ct_cells")
    x = as_features(train, metric="C_T", role="train", min_samples=cells)
    p = as_features(test, metric="C_T", role="test", min_samples=cells)
    q = as_features(
        generated, metric="C_T", role="generated", min_samples=min_generated + 1
    )
    same_dims("C_T", train=x, test=p, generated=q)

    if x.shape[1] > pca_dims:
        mean, axes = pca_projection(x, positive_int(pca_dims, name="ct_pca_dims"))
        x, p, q = ((a - mean) @ axes for a in (x, p, q))

    centres = kmeans(x, cells, seed=seed)
    x_cell, p_cell, q_cell = (distances(a, centres).argmin(axis=1) for a in (x, p, q))

    weights, scores = [], []
    for c in range(cells):
        if not (x_cell == c).any() or not (p_cell == c).any():
            raise ValueError(
                f"C_T: cell {c} of {cells} has no training or no test samples; "
                "use fewer cells (ct_cells) or larger sets"
            )
        if (q_cell == c).sum() <= min_generated:
            continue
        test_dist, _ = nearest(p[p_cell == c], x[x_cell == c])
        gen_dist, _ = nearest(q[q_cell == c], x[x_cell == c])
        weights.append((p_cell == c).mean())
        scores.append(_z_u(test_dist, gen_dist))

    if not weights:
        raise ValueError(
            f"C_T needs a cell with more than {min_generated} generated samples "
            f"(ct_min_generated); the largest has {np.bincount(q_cell).max()}"
        )
    w = np.asarray(weights)
    return float((w * np.asarray(scores)).sum() / w.sum())
