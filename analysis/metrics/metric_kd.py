"""Kernel distance (KD, also called KID): polynomial-kernel MMD on subsets."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.metrics.checks import as_features, positive_int, same_dims

#: The unbiased estimator leaves out the diagonal, so each subset needs 2.
KD_MIN_SAMPLES = 2


def polynomial_kernel(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> NDArray[np.float64]:
    """Polynomial kernel matrix ``(gamma * x @ y.T + coef0) ** degree``.

    ``gamma`` defaults to ``1 / d``, the choice of Bińkowski et al. (2018).
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> float:
    """Unbiased estimate of the squared MMD between two equal-size samples.

    Parameters
    ----------
    x, y : numpy.ndarray, shape (m, d)
        Two samples of the same size m >= 2.
    degree, gamma, coef0
        Polynomial kernel parameters (see :func:`polynomial_kernel`).

    Returns
    -------
    float
        .. math::

            \\frac{1}{m(m-1)}\\sum_{i\\ne j}\\big[k(x_i,x_j)+k(y_i,y_j)\\big]
            - \\frac{2}{m^2}\\sum_{i,j}k(x_i,y_j)

        (the cross term keeps its diagonal, as in Bińkowski et al. 2018).
    """
    m = x.shape[0]
    if y.shape[0] != m or m < KD_MIN_SAMPLES:
        raise ValueError(
            f"KD: subsets must have the same size >= {KD_MIN_SAMPLES}; "
            f"got {m} and {y.shape[0]}"
        )
    k_xx = polynomial_kernel(x, x, degree=degree, gamma=gamma, coef0=coef0)
    k_yy = polynomial_kernel(y, y, degree=degree, gamma=gamma, coef0=coef0)
    k_xy = polynomial_kernel(x, y, degree=degree, gamma=gamma, coef0=coef0)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_distance(
    real: ArrayLike,
    generated: ArrayLike,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID): mean unbiased polynomial MMD² over subsets.

    Parameters
    ----------
    real, generated : array_like, shape (n, d) and (m, d)
        Features; at least 2 rows each.
    subsets : int
        Number of random subset pairs.
    subset_size : int
        Size of each subset; reduced to ``min(n, m)`` when the sets are
        smaller.
    degree, gamma, coef0
        Kernel :math:`k(x,y) = (\\gamma\\,x^\\top y + c_0)^{\\mathrm{degree}}`;
        ``gamma=None`` means :math:`1/d`.
    seed : int
        Seed of the subset draws (each without replacement).

    Returns
    -------
    value : float
        Mean of :func:`mmd2_unbiased` over the subsets, in squared kernel
        units. It is the raw estimate, *not* multiplied by 1000 (some papers
        print KID x 1e3); it can be slightly negative when the sets match.
    spread : float
        Standard deviation of the per-subset estimates.

    Notes
    -----
    Same definition and defaults as dgm-eval's ``kd`` (Stein et al. 2023:
    100 subsets of 1000, cubic kernel, gamma 1/d, coef0 1), whose code
    reports the raw mean, and as torch-fidelity's KID. No common R
    equivalent (``kernlab::kmmd`` uses other kernels).

    References
    ----------
    Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs",
    ICLR 2018.
    """
    x = as_features(real, metric="KD", role="real", min_samples=KD_MIN_SAMPLES)
    y = as_features(
        generated, metric="KD", role="generated", min_samples=KD_MIN_SAMPLES
    )
    same_dims("KD", real=x, generated=y)
    subsets = positive_int(subsets, name="kd_subsets")
    size = min(
        positive_int(subset_size, name="kd_subset_size", minimum=2), *map(len, (x, y))
    )

    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xs = x[rng.choice(x.shape[0], size=size, replace=False)]
        ys = y[rng.choice(y.shape[0], size=size, replace=False)]
        values[i] = mmd2_unbiased(xs, ys, degree=degree, gamma=gamma, coef0=coef0)
    return float(values.mean()), float(values.std())
