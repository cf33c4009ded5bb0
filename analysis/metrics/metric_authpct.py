"""Authenticity percentage (AuthPct)."""

from __future__ import annotations

from numpy.typing import ArrayLike

from analysis.metrics.checks import as_features, same_dims
from analysis.metrics.neighbours import kth_neighbour_radii, nearest


def authpct(real: ArrayLike, generated: ArrayLike) -> float:
    """Percentage of generated samples that are authentic, not copies.

    Parameters
    ----------
    real : array_like, shape (n, d)
        Real (training) features; at least 2 rows.
    generated : array_like, shape (m, d)
        Generated features; at least 1 row.

    Returns
    -------
    float
        Percentage (0-100) of generated samples that are farther from their
        nearest real sample than that real sample is from its own nearest
        real neighbour.

    Notes
    -----
    For generated :math:`Y_j` with nearest real sample
    :math:`X_{i^*}` at distance :math:`d_1 = \\lVert Y_j - X_{i^*}\\rVert`,
    and :math:`d_2` the distance from :math:`X_{i^*}` to its nearest other
    real sample, :math:`Y_j` is authentic when :math:`d_2 < d_1`;
    AuthPct :math:`= 100\\cdot\\frac1m\\sum_j 1[d_2 < d_1]`. This is the
    hypothesis-test form of the authenticity of Alaa et al. used by Stein et
    al. 2023 (dgm-eval). Euclidean distances in float64.

    References
    ----------
    Alaa, van Breugel, Saveliev & van der Schaar, "How faithful is your
    synthetic data? Sample-level metrics for evaluating and auditing
    generative models", ICML 2022.
    """
    x = as_features(real, metric="AuthPct", role="real", min_samples=2)
    y = as_features(generated, metric="AuthPct", role="generated", min_samples=1)
    same_dims("AuthPct", real=x, generated=y)

    real_nn = kth_neighbour_radii(x, 1)
    d1, index = nearest(y, x)
    return float(100.0 * (real_nn[index] < d1).mean())
