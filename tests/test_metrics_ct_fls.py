"""The data-copying test C_T and the feature likelihood score FLS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from analysis.metrics.metric_ct import c_t, kmeans
from analysis.metrics.metric_fls import fls


def nearest_distance(points, reference) -> np.ndarray:
    return np.array([np.min(np.linalg.norm(reference - p, axis=1)) for p in points])


def test_ct_with_one_cell_is_the_z_scored_mann_whitney_u() -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(80, 3)), rng.normal(size=(50, 3))
    gen = rng.normal(size=(40, 3)) * 0.9
    lp, lq = nearest_distance(test, train), nearest_distance(gen, train)
    u = mannwhitneyu(lq, lp).statistic
    m, n = len(lq), len(lp)
    expected = (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)
    assert c_t(train, test, gen, cells=1) == pytest.approx(expected, rel=1e-12)


def test_ct_detects_copying() -> None:
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    fresh = rng.normal(size=(300, 4))
    copies = train[:300] + rng.normal(scale=1e-3, size=(300, 4))
    assert abs(c_t(train, test, fresh, seed=3)) < 3
    assert c_t(train, test, copies, seed=3) < -10


def test_ct_is_deterministic_and_names_its_minimum() -> None:
    rng = np.random.default_rng(2)
    train, test, gen = (rng.normal(size=(100, 70)) for _ in range(3))
    # 70 > 64 dimensions: the PCA projection is used
    assert c_t(train, test, gen, seed=5) == c_t(train, test, gen, seed=5)
    with pytest.raises(ValueError, match="C_T needs at least 21 generated"):
        c_t(train, test, gen[:20])


def test_kmeans_finds_separated_clusters() -> None:
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.vstack([c + rng.normal(scale=0.1, size=(30, 2)) for c in centres])
    found = kmeans(x, 3, seed=1)
    order = np.argsort(found[:, 0] + 2 * found[:, 1])
    assert found[order] == pytest.approx(centres, abs=0.1)


def test_fls_ranks_matching_above_mismatched_samples() -> None:
    rng = np.random.default_rng(4)
    train, test = rng.normal(size=(200, 5)), rng.normal(size=(100, 5))
    good = rng.normal(size=(100, 5))
    bad = rng.normal(size=(100, 5)) * 2.5 + 1
    good_score = fls(train, test, good, steps=60, seed=1)
    bad_score = fls(train, test, bad, steps=60, seed=1)
    # fresh samples from the training distribution score near 100
    assert 70 < good_score < 130
    assert bad_score < good_score / 2
    assert fls(train, test, good, steps=60, seed=1) == good_score


@pytest.mark.torch
def test_fls_matches_a_torch_autograd_reference() -> None:
    """The NumPy Adam on the exact gradient against torch's Adam on autograd."""
    torch = pytest.importorskip("torch")
    # tiny tensors: one thread avoids OpenMP start-up costs on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    train, test, gen = (rng.normal(size=(n, 4)) for n in (120, 60, 60))
    size = 60
    draw = np.random.default_rng(2)
    both = train[draw.choice(120, size=120, replace=False)]
    fit, base = both[:size], both[size:]
    p = test[draw.choice(60, size=size, replace=False)]
    q = gen[draw.choice(60, size=size, replace=False)]
    pooled = np.concatenate([fit, base, p, q])
    mean, std = pooled.mean(0), pooled.std(0, ddof=1)
    fit, base, p, q = (torch.from_numpy((a - mean) / std) for a in (fit, base, p, q))

    def nll(points, centres, log_var):
        sq = torch.cdist(points, centres) ** 2
        terms = -0.5 * sq / torch.exp(log_var) - 2 * log_var - np.log(size)
        return -torch.logsumexp(terms, dim=1).mean()

    scores = {}
    for name, centres in (("gen", q), ("base", base)):
        log_var = torch.zeros(size, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([log_var], lr=0.5)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20], gamma=0.1)
        for _ in range(40):
            opt.zero_grad()
            nll(fit, centres, log_var).backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                log_var.clamp_(-100, 20)
        scores[name] = float(nll(p, centres, log_var.detach()))
    torch.set_num_threads(threads)
    expected = 100 * np.exp(-2 * (scores["gen"] - scores["base"]) / 4)
    assert fls(train, test, gen, steps=40, seed=2) == pytest.approx(expected, rel=1e-8)


def test_fls_names_its_minimum() -> None:
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="FLS needs at least 4 train"):
        fls(x[:3], x, x)
