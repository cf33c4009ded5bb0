"""Feature likelihood score (FLS, Jiralerspong et al. 2023)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from analysis.metrics.checks import as_features, positive_int, same_dims

#: Each of the four sets (train, baseline, test, generated) needs two samples.
FLS_MIN_SET = 2


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.clip(
        (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0, None
    )


def _kde_log_terms(sq: np.ndarray, log_var: np.ndarray, dim: int) -> np.ndarray:
    """log N(x_i | c_j, e^{l_j} I) - log M, without the d/2 log 2π constant."""
    return (
        -0.5 * sq * np.exp(-log_var)[None, :]
        - 0.5 * dim * log_var[None, :]
        - np.log(sq.shape[1])
    )


def _kde_nll(sq: np.ndarray, log_var: np.ndarray, dim: int) -> float:
    """Mean negative log-likelihood of the points behind ``sq`` under the KDE."""
    return float(-logsumexp(_kde_log_terms(sq, log_var, dim), axis=1).mean())


def _fit_log_variances(sq: np.ndarray, dim: int, steps: int) -> np.ndarray:
    """Per-centre log variances maximising the likelihood of the fitting points.

    Adam (learning rate 0.5, divided by 10 after half the steps, betas 0.9
    and 0.999) on the exact gradient, from log variance 0, as the reference
    implementation does with torch autograd.
    """
    log_var = np.zeros(sq.shape[1])
    first, second = np.zeros_like(log_var), np.zeros_like(log_var)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        terms = _kde_log_terms(sq, log_var, dim)
        # responsibility of centre j for point i
        resp = np.exp(terms - logsumexp(terms, axis=1, keepdims=True))
        # d/dl_j of -mean_i log sum_j exp(terms_ij)
        grad = -(resp * (0.5 * sq * np.exp(-log_var)[None, :] - 0.5 * dim)).mean(0)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad**2
        rate = 0.5 if step <= steps // 2 else 0.05
        corrected = first / (1 - beta1**step)
        log_var -= rate * corrected / (np.sqrt(second / (1 - beta2**step)) + eps)
        # identical samples would drive a variance to zero (log to -inf)
        np.clip(log_var, -100.0, 20.0, out=log_var)
    return log_var


def fls(
    train: ArrayLike,
    test: ArrayLike,
    generated: ArrayLike,
    *,
    max_samples: int = 10000,
    steps: int = 100,
    seed: int = 0,
) -> float:
    """Feature likelihood score of generated samples.

    Parameters
    ----------
    train : array_like, shape (l, d)
        Training-set features; split at random into a fitting half and a
        baseline half, so at least 4 rows.
    test : array_like, shape (n, d)
        Held-out real features; at least 2 rows.
    generated : array_like, shape (m, d)
        Generated features; at least 2 rows.
    max_samples : int
        Every set is subsampled to ``min(max_samples, l // 2, n, m)`` rows.
    steps : int
        Adam steps fitting the bandwidths (learning rate 0.5, divided by 10
        half way).
    seed : int
        Seed of the subsampling.

    Returns
    -------
    float
        :math:`100\\exp(-2(\\mathrm{NLL}_{gen}-\\mathrm{NLL}_{base})/d)`.
        100 means the generated samples explain the test set as well as
        held-out training samples do; lower is worse. Values above 100 are
        possible (e.g. for memorised training samples).

    Notes
    -----
    Features are standardised with the mean and standard deviation of all
    four sets together. A Gaussian KDE is centred on the generated samples,
    each with its own variance :math:`\\sigma_j^2`, fitted by maximising the
    likelihood of the training half. :math:`\\mathrm{NLL}_{gen}` is the test
    set's mean negative log-likelihood under that KDE. The same is done with
    the baseline half of the training set as centres, giving
    :math:`\\mathrm{NLL}_{base}`. Computed in float64 with NumPy; the
    bandwidths are fitted by Adam on the exact gradient, with the reference
    code's schedule.

    References
    ----------
    Jiralerspong, Bose, Gemp, Qin, Bengio, Berard & Gidel, "Feature
    likelihood divergence: evaluating the generalization of generative models
    using samples", NeurIPS 2023 (FLS).
    """
    x = as_features(train, metric="FLS", role="train", min_samples=2 * FLS_MIN_SET)
    p = as_features(test, metric="FLS", role="test", min_samples=FLS_MIN_SET)
    q = as_features(generated, metric="FLS", role="generated", min_samples=FLS_MIN_SET)
    same_dims("FLS", train=x, test=p, generated=q)
    steps = positive_int(steps, name="fls_steps")
    size = min(
        positive_int(max_samples, name="fls_max_samples", minimum=2),
        x.shape[0] // 2,
        p.shape[0],
        q.shape[0],
    )

    rng = np.random.default_rng(seed)
    both = x[rng.choice(x.shape[0], size=2 * size, replace=False)]
    fit, baseline = both[:size], both[size:]
    p = p[rng.choice(p.shape[0], size=size, replace=False)]
    q = q[rng.choice(q.shape[0], size=size, replace=False)]

    pooled = np.concatenate([fit, baseline, p, q])
    mean, std = pooled.mean(axis=0), pooled.std(axis=0, ddof=1)
    # constant dimensions carry no information; keep them from dividing by 0
    std[std == 0] = 1.0
    fit, baseline, p, q = ((a - mean) / std for a in (fit, baseline, p, q))

    dim = x.shape[1]
    nll = {}
    for name, centres in (("gen", q), ("base", baseline)):
        log_var = _fit_log_variances(_squared_distances(fit, centres), dim, steps)
        nll[name] = _kde_nll(_squared_distances(p, centres), log_var, dim)
    return 100.0 * math.exp(-2.0 * (nll["gen"] - nll["base"]) / x.shape[1])
