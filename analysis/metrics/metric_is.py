"""Inception Score (IS) from class logits."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_softmax, logsumexp

from analysis.metrics.checks import as_features, positive_int


def inception_score(
    logits: ArrayLike, *, splits: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Inception Score of generated images from their class logits.

    Parameters
    ----------
    logits : array_like, shape (m, classes)
        Unnormalised class scores of the generated images (for example the
        1008 outputs of the FID Inception network); softmax is applied here.
    splits : int
        The images are shuffled and cut into this many parts; needs
        ``m >= splits``.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    value : float
        Mean over splits of :math:`\\exp(\\mathbb{E}_x KL(p(y|x)\\,\\|\\,p(y)))`,
        where :math:`p(y)` is the split's mean class distribution. Between
        1 and the number of classes; higher means confident and varied
        predictions.
    spread : float
        Standard deviation over the splits.

    Notes
    -----
    Computed in float64 from log-probabilities, so near-zero probabilities do
    not underflow. IS does not use real images. Split sizes are
    ``m // splits`` (the remainder is left out), as in the reference code.

    References
    ----------
    Salimans et al., "Improved techniques for training GANs", NeurIPS 2016.
    """
    splits = positive_int(splits, name="is_splits")
    z = as_features(logits, metric="IS", role="generated", min_samples=splits)

    rng = np.random.default_rng(seed)
    log_p = log_softmax(z[rng.permutation(z.shape[0])], axis=1)
    part = z.shape[0] // splits
    scores = []
    for k in range(splits):
        chunk = log_p[k * part : (k + 1) * part]
        # log of the split's marginal p(y) = mean_x p(y|x), without underflow
        log_marginal = logsumexp(chunk, axis=0) - np.log(chunk.shape[0])
        kl = (np.exp(chunk) * (chunk - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
