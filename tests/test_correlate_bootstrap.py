"""The vectorised bootstrap pieces against scipy, row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import bootstrap as bs

SCIPY = {
    "spearman": lambda x, y: stats.spearmanr(x, y).statistic,
    "kendall": lambda x, y: stats.kendalltau(x, y).statistic,
    "pearson": lambda x, y: stats.pearsonr(x, y).statistic,
}


def _scipy_rows(method: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy's coefficient for each row, over its complete pairs."""
    out = []
    for xr, yr in zip(x, y, strict=True):
        keep = ~(np.isnan(xr) | np.isnan(yr))
        xr, yr = xr[keep], yr[keep]
        if keep.sum() < 2 or np.ptp(xr) == 0 or np.ptp(yr) == 0:
            out.append(np.nan)
        else:
            out.append(SCIPY[method](xr, yr))
    return np.array(out)


@pytest.mark.parametrize("method", bs.METHODS)
def test_rows_equal_scipy_with_ties_and_missing_values(method):
    rng = np.random.default_rng(7)
    # Few distinct values, so most rows have ties on both sides, as resamples do.
    x = rng.integers(0, 5, size=(300, 11)).astype(float)
    y = rng.integers(0, 4, size=(300, 11)).astype(float)
    x[rng.random(x.shape) < 0.05] = np.nan
    y[rng.random(y.shape) < 0.05] = np.nan
    got = bs.CORRELATIONS[method](x, y)
    want = _scipy_rows(method, x, y)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("method", bs.METHODS)
def test_rows_accept_stacks_of_any_leading_shape(method):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 9))
    y = x + rng.normal(size=(4, 5, 9))
    got = bs.CORRELATIONS[method](x, y)
    assert got.shape == (4, 5)
    want = _scipy_rows(method, x.reshape(-1, 9), y.reshape(-1, 9)).reshape(4, 5)
    np.testing.assert_allclose(got, want, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=25)
)
def test_kendall_tau_b_equals_scipy_on_any_ties(pairs):
    x = np.array([[p[0] for p in pairs]], dtype=float)
    y = np.array([[p[1] for p in pairs]], dtype=float)
    got = bs.kendall_rows(x, y)
    want = _scipy_rows("kendall", x, y)
    np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)


def test_constant_side_gives_nan_like_scipy():
    x = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    y = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    for method in bs.METHODS:
        assert np.isnan(bs.CORRELATIONS[method](x, y)).all()


def test_perfectly_monotone_rows_give_exactly_one():
    x = np.arange(10.0)[None, :].repeat(3, axis=0)
    y = np.exp(x)
    assert bs.spearman_rows(x, y).tolist() == [1.0, 1.0, 1.0]
    assert bs.kendall_rows(x, -y).tolist() == [-1.0, -1.0, -1.0]
    assert bs.pearson_rows(x, 2 * x + 1) == pytest.approx([1.0] * 3, abs=1e-15)


def test_kendall_blocks_do_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 6, size=(50, 12)).astype(float)
    y = rng.integers(0, 6, size=(50, 12)).astype(float)
    whole = bs.kendall_rows(x, y)
    # 66 pairs per row and 200 cells per block: 3 rows per block.
    monkeypatch.setattr(bs, "_CELLS_PER_BLOCK", 200)
    np.testing.assert_array_equal(bs.kendall_rows(x, y), whole)


# Benjamini-Hochberg ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 7, 40, 500])
def test_bh_equals_scipy_false_discovery_control(size):
    rng = np.random.default_rng(size)
    p = rng.uniform(size=size) ** 3  # many small p-values
    p[: size // 4] = p[0]  # and some ties
    np.testing.assert_allclose(
        bs.bh_adjust(p), stats.false_discovery_control(p, method="bh"), atol=1e-15
    )


def test_bh_leaves_missing_p_values_out_of_the_family():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan])
    got = bs.bh_adjust(p)
    present = ~np.isnan(p)
    assert np.isnan(got[~present]).all()
    want = stats.false_discovery_control(p[present], method="bh")
    np.testing.assert_allclose(got[present], want)
    # Hand check: sorted 0.01, 0.03, 0.04 with m = 3 -> 0.03, 0.04, 0.04.
    np.testing.assert_allclose(got[present], [0.03, 0.04, 0.04])


def test_bh_rejects_p_values_outside_0_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        bs.bh_adjust([0.2, 1.5])


# Intervals and p-values ---------------------------------------------------


def test_percentile_interval_matches_numpy_quantile_and_skips_nan():
    rng = np.random.default_rng(5)
    draws = rng.normal(size=(1001, 3))
    draws[::10, 1] = np.nan
    draws[:, 2] = np.nan
    low, high = bs.percentile_interval(draws, 0.9)
    kept = draws[~np.isnan(draws[:, 1]), 1]
    assert low[0] == pytest.approx(np.quantile(draws[:, 0], 0.05))
    assert high[0] == pytest.approx(np.quantile(draws[:, 0], 0.95))
    assert low[1] == pytest.approx(np.quantile(kept, 0.05))
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_percentile_interval_rejects_bad_confidence():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bs.percentile_interval(np.zeros(5), 1.0)


def test_bootstrap_p_value_by_hand():
    # 3 of 9 draws <= 0, 6 >= 0: p = 2 * (3 + 1) / 10.
    draws = np.array([-2, -1, -0.5, 1, 2, 3, 4, 5, 6], dtype=float)
    assert bs.bootstrap_p_value(draws) == pytest.approx(0.8)
    # Every draw above 0: the smallest p-value B draws can give.
    assert bs.bootstrap_p_value(np.ones(99)) == pytest.approx(2 / 100)
    # All zero: no evidence of a difference at all.
    assert bs.bootstrap_p_value(np.zeros(10)) == 1.0


# Resampling ----------------------------------------------------------------


def _participants() -> bs.Participants:
    rng = np.random.default_rng(2)
    return bs.Participants.from_groups(
        [rng.uniform(0, 0.5, size=n) for n in (25, 27, 3, 26)]
    )


def test_participants_means_and_layout():
    groups = [np.array([0.1, 0.3]), np.array([0.5]), np.array([0.2, 0.2, 0.5])]
    people = bs.Participants.from_groups(groups)
    np.testing.assert_array_equal(people.counts, [2, 1, 3])
    np.testing.assert_array_equal(people.offsets, [0, 2, 3])
    np.testing.assert_allclose(people.means(), [0.2, 0.5, 0.3])
    with pytest.raises(ValueError, match="at least one participant"):
        bs.Participants.from_groups([np.array([0.1]), np.array([])])


def test_resample_means_equal_a_loop_over_the_same_draws():
    people = _participants()
    slots = np.random.default_rng(0).integers(0, 4, size=(200, 4))
    got = people.resample_means(np.random.default_rng(9), slots)
    # Redraw the same indices and average them one slot at a time.
    width = int(people.counts.max())
    draws = np.random.default_rng(9).integers(
        0, people.counts[slots][..., None], size=(*slots.shape, width)
    )
    for b in range(slots.shape[0]):
        for j, model in enumerate(slots[b]):
            n = people.counts[model]
            chosen = people.values[people.offsets[model] + draws[b, j, :n]]
            assert got[b, j] == pytest.approx(chosen.mean(), abs=1e-15)


def test_resample_means_are_centred_on_the_model_means():
    people = _participants()
    slots = np.tile(np.arange(4), (20000, 1))
    means = people.resample_means(np.random.default_rng(1), slots).mean(axis=0)
    sem = np.array(
        [
            people.values[o : o + n].std() / np.sqrt(n) / np.sqrt(20000)
            for o, n in zip(people.offsets, people.counts, strict=True)
        ]
    )
    assert np.all(np.abs(means - people.means()) < 5 * sem)


def test_a_model_drawn_twice_gets_two_participant_resamples():
    people = _participants()
    slots = np.zeros((500, 2), dtype=int)
    means = people.resample_means(np.random.default_rng(4), slots)
    assert np.mean(means[:, 0] != means[:, 1]) > 0.95


def test_block_is_deterministic_and_shares_resamples_across_metrics():
    human = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.35])
    metrics = np.vstack([human * 2, -human, np.arange(6.0)])
    one = bs.bootstrap_block(
        bs.dataset_rng(1, "cifar10", 0), 300, human, metrics, bs.METHODS
    )
    two = bs.bootstrap_block(
        bs.dataset_rng(1, "cifar10", 0), 300, human, metrics, bs.METHODS
    )
    for method in bs.METHODS:
        np.testing.assert_array_equal(one[method], two[method])
        assert one[method].shape == (300, 3)
        # Metric 0 is the human score doubled, metric 1 its negation: every
        # resample with at least two distinct models gives exactly +1 and -1.
        defined = ~np.isnan(one[method][:, 0])
        np.testing.assert_allclose(one[method][defined, 0], 1.0, atol=1e-12)
        np.testing.assert_allclose(one[method][defined, 1], -1.0, atol=1e-12)


def test_streams_differ_by_seed_dataset_and_block():
    draw = [
        bs.dataset_rng(*args).integers(0, 10**9)
        for args in ((0, "a", 0), (1, "a", 0), (0, "b", 0), (0, "a", 1))
    ]
    assert len(set(draw)) == 4
    assert bs.dataset_rng(0, "a", 0).integers(0, 10**9) == draw[0]


def test_resample_blocks_cover_every_resample_once():
    blocks = bs.resample_blocks(2500, block_size=1000)
    assert [(b.start, b.stop) for b in blocks] == [
        (0, 1000),
        (1000, 2000),
        (2000, 2500),
    ]
    assert bs.resample_blocks(0) == []
    with pytest.raises(ValueError, match=">= 0"):
        bs.resample_blocks(-1)


def test_check_methods_names_the_allowed_ones():
    assert bs.check_methods(["Spearman", " kendall", "spearman"]) == (
        "spearman",
        "kendall",
    )
    with pytest.raises(ValueError, match="allowed: spearman, kendall, pearson"):
        bs.check_methods(["spearman", "tau"])
    with pytest.raises(ValueError, match="none given"):
        bs.check_methods([""])


@pytest.mark.parametrize("with_participants", [False, True])
def test_block_without_missing_values_equals_the_general_functions(with_participants):
    """The shared-ranks path for complete data gives the row functions' values."""
    rng = np.random.default_rng(12)
    human = rng.uniform(size=13)
    metrics = np.round(rng.normal(size=(5, 13)), 1)  # ties inside resamples
    people = _participants_for(13, rng) if with_participants else None
    got = bs.bootstrap_block(
        bs.dataset_rng(0, "x", 0), 800, human, metrics, bs.METHODS, people
    )
    stream = bs.dataset_rng(0, "x", 0)
    slots = stream.integers(0, 13, size=(800, 13))
    human_draws = (
        human[slots] if people is None else people.resample_means(stream, slots)
    )
    metric_draws = np.moveaxis(metrics[:, slots], 0, 1)
    stack = np.broadcast_to(human_draws[:, None, :], metric_draws.shape)
    for method in bs.METHODS:
        want = bs.CORRELATIONS[method](stack, metric_draws)
        np.testing.assert_allclose(got[method], want, atol=1e-12, equal_nan=True)


def _participants_for(n_models: int, rng: np.random.Generator) -> bs.Participants:
    return bs.Participants.from_groups(
        [rng.uniform(0, 0.5, size=rng.integers(3, 30)) for _ in range(n_models)]
    )


def test_no_resamples_give_missing_intervals():
    low, high = bs.percentile_interval(np.empty((0, 3)))
    assert low.shape == high.shape == (3,)
    assert np.isnan(low).all() and np.isnan(high).all()
    assert np.isnan(bs.bootstrap_p_value(np.empty((0, 3)))).all()
