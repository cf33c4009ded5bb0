"""Fréchet distance at 2048 dimensions: symmetric eigenvalue form vs sqrtm.

Times :func:`analysis.metrics.metric_fd.frechet_distance_from_stats` (eigh of
S1, eigvalsh of sqrt(S1) S2 sqrt(S1)) against the classic formula with
``scipy.linalg.sqrtm(S1 @ S2)``, both in float64 on the same covariances, in
the same run, and prints both times, their ratio and the relative difference
of the two values. It also times the per-model cost when the real set's
square root is prepared once (:class:`FrechetReference`), which is how
``analysis metrics`` scores several models against one real set. Repeats are
interleaved and the best of each is kept, so load from other processes hits
both sides alike.

    python benchmarks/metrics/bench_fd.py [--dim 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg

from analysis.metrics.metric_fd import FrechetReference, frechet_distance_from_stats


def sqrtm_fd(mu1, sigma1, mu2, sigma2) -> float:
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    return float(
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real)
    )


def interleaved(functions: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Best time and value of each function, timed in turn ``repeats`` times."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            value = fn()
            elapsed = time.perf_counter() - start
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    d = args.dim
    # covariances of 2d samples of correlated Gaussian features, as from images
    mix1, mix2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    x = rng.normal(size=(2 * d, d)) @ mix1 / np.sqrt(d)
    y = rng.normal(size=(2 * d, d)) @ (mix1 + 0.3 * mix2) / np.sqrt(d) + 0.1
    mu1, mu2 = x.mean(0), y.mean(0)
    sigma1, sigma2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)

    reference = FrechetReference.from_stats(mu1, sigma1)
    best = interleaved(
        {
            "eig": lambda: frechet_distance_from_stats(mu1, sigma1, mu2, sigma2),
            "eig_prepared": lambda: reference.distance(mu2, sigma2),
            "sqrtm": lambda: sqrtm_fd(mu1, sigma1, mu2, sigma2),
        },
        args.repeats,
    )
    (t_eig, fd_eig), (t_prep, fd_prep) = best["eig"], best["eig_prepared"]
    t_sqrtm, fd_sqrtm = best["sqrtm"]
    print(f"dimensions                       {d}")
    print(f"eigenvalue form, one pair        {t_eig:8.3f} s   FD = {fd_eig:.10f}")
    print(f"eigenvalue form, per model *     {t_prep:8.3f} s   FD = {fd_prep:.10f}")
    print(f"scipy.linalg.sqrtm, one pair     {t_sqrtm:8.3f} s   FD = {fd_sqrtm:.10f}")
    print(f"relative difference              {abs(fd_eig - fd_sqrtm) / fd_sqrtm:.2e}")
    print(f"speed-up, one pair (sqrtm/eig)   {t_sqrtm / t_eig:8.2f}x")
    print(f"speed-up, per model *            {t_sqrtm / t_prep:8.2f}x")
    print("* real-set square root prepared once, as for several models")


if __name__ == "__main__":
    main()
