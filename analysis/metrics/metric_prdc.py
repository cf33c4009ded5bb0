"""Precision, recall (k-NN manifolds), density and coverage."""

from __future__ import annotations

from numpy.typing import ArrayLike

from analysis.metrics.checks import as_features, positive_int, same_dims
from analysis.metrics.neighbours import count_within, kth_neighbour_radii, nearest


def prdc_min_samples(k: int) -> int:
    """Samples per set that a k-NN radius needs: the point and k others."""
    return k + 1


def precision_recall_density_coverage(
    real: ArrayLike, generated: ArrayLike, *, k: int = 5
) -> dict[str, float]:
    """Precision, recall, density and coverage from k-nearest-neighbour balls.

    Parameters
    ----------
    real, generated : array_like, shape (n, d) and (m, d)
        Features; each set needs at least ``k + 1`` rows.
    k : int
        Neighbourhood size. Each sample's ball has the radius of its distance
        to its k-th nearest other sample of the same set.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``coverage`` (fractions in [0, 1]) and
        ``density`` (>= 0; about 1 when the sets match).

    Notes
    -----
    With real samples :math:`X_i`, generated :math:`Y_j`, and
    :math:`B(X_i, r_i)` the ball around :math:`X_i` reaching its k-th
    neighbour in the real set (:math:`s_j` likewise in the generated set):

    - precision :math:`= \\frac1m\\sum_j 1[\\exists i: \\lVert Y_j-X_i\\rVert<r_i]`
    - recall :math:`= \\frac1n\\sum_i 1[\\exists j: \\lVert X_i-Y_j\\rVert<s_j]`
    - density :math:`= \\frac1{km}\\sum_j\\sum_i 1[\\lVert Y_j-X_i\\rVert<r_i]`
    - coverage :math:`= \\frac1n\\sum_i 1[\\min_j\\lVert X_i-Y_j\\rVert<r_i]`

    Strict inequalities, as in the reference implementation of Naeem et al.
    Distances are Euclidean in float64.

    References
    ----------
    Kynkäänniemi et al., "Improved precision and recall metric for assessing
    generative models", NeurIPS 2019.
    Naeem et al., "Reliable fidelity and diversity metrics for generative
    models", ICML 2020.
    """
    k = positive_int(k, name="prdc_k")
    need = prdc_min_samples(k)
    x = as_features(real, metric="precision/recall", role="real", min_samples=need)
    y = as_features(
        generated, metric="precision/recall", role="generated", min_samples=need
    )
    same_dims("precision/recall", real=x, generated=y)

    real_radii = kth_neighbour_radii(x, k)
    generated_radii = kth_neighbour_radii(y, k)
    inside_real = count_within(y, x, real_radii)
    inside_generated = count_within(x, y, generated_radii)
    nearest_generated, _ = nearest(x, y)

    return {
        "precision": float((inside_real > 0).mean()),
        "recall": float((inside_generated > 0).mean()),
        "density": float(inside_real.sum() / (k * y.shape[0])),
        "coverage": float((nearest_generated < real_radii).mean()),
    }
