"""Vendi score: the effective number of distinct samples."""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.metrics.checks import as_features


def _entropy_exp(eigenvalues: NDArray[np.float64], q: float) -> float:
    """exp of the order-q Rényi entropy of a probability vector."""
    p = eigenvalues[eigenvalues > 0]
    if q == 1:
        return float(np.exp(-(p * np.log(p)).sum()))
    if math.isinf(q):
        return float(1.0 / p.max())
    return float(np.exp(np.log((p**q).sum()) / (1 - q)))


def vendi_score(features: ArrayLike, *, q: float = 1.0) -> float:
    """Vendi score of one set of samples, with the cosine-similarity kernel.

    Parameters
    ----------
    features : array_like, shape (m, d)
        Features of the generated images; at least 1 row, no zero rows.
    q : float
        Order of the entropy; 1 (default) is the Shannon case, ``inf`` is
        allowed.

    Returns
    -------
    float
        Between 1 (all samples alike) and ``min(m, d)``.

    Notes
    -----
    With rows normalised to unit length, :math:`K = XX^\\top` and
    :math:`\\lambda_i` the eigenvalues of :math:`K/m`,

    .. math:: VS_q = \\exp\\Big(\\frac{1}{1-q}\\log\\sum_i\\lambda_i^q\\Big),
              \\qquad VS_1 = \\exp\\Big(-\\sum_i\\lambda_i\\log\\lambda_i\\Big).

    The non-zero eigenvalues of :math:`XX^\\top/m` equal those of the
    :math:`d\\times d` matrix :math:`X^\\top X/m`, so the smaller of the two is
    decomposed. Eigenvalues at or below zero (rounding) are left out.

    References
    ----------
    Friedman & Dieng, "The Vendi Score: a diversity evaluation metric for
    machine learning", TMLR 2023.
    """
    x = as_features(features, metric="vendi", role="generated", min_samples=1)
    if q < 0:
        raise ValueError(f"vendi: q must be >= 0; got {q}")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError("vendi: features with zero length have no direction")

    x = x / norms[:, None]
    m = x.shape[0]
    gram = x @ x.T if m <= x.shape[1] else x.T @ x
    eigenvalues = np.linalg.eigvalsh(gram / m)
    return _entropy_exp(eigenvalues, q)


def vendi_per_class(
    features: ArrayLike, labels: ArrayLike, *, q: float = 1.0
) -> dict[str, float]:
    """Vendi score of each class of samples.

    Parameters
    ----------
    features : array_like, shape (m, d)
        Features of the generated images.
    labels : array_like, shape (m,)
        Class of each image; empty strings and missing values mean unknown,
        and such images are left out (with a warning).
    q : float
        Order of the entropy (see :func:`vendi_score`).

    Returns
    -------
    dict
        Class label (as a string) to that class's Vendi score, in sorted
        label order. Their mean is the table's ``vendi_per_class``.
    """
    x = as_features(features, metric="vendi", role="generated", min_samples=1)
    lab = np.asarray(labels, dtype=object)
    if lab.shape != (x.shape[0],):
        raise ValueError(
            f"vendi: need one label per sample; got {lab.shape[0]} labels for "
            f"{x.shape[0]} samples"
        )
    known = np.array([v is not None and str(v) not in ("", "nan") for v in lab])
    if not known.any():
        raise ValueError("vendi: no sample has a class label")
    if not known.all():
        warnings.warn(
            f"vendi_per_class: left out {int((~known).sum())} samples without "
            "a class label",
            stacklevel=2,
        )
    names = np.array([str(v) for v in lab[known]])
    x = x[known]
    return {c: vendi_score(x[names == c], q=q) for c in sorted(set(names))}
