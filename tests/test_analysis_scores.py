"""Per-model scores: clustered GLM against statsmodels, bootstrap, Wilson, SEM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from analysis.readers import main_trials, participants_from_trials
from analysis.scores import (
    bootstrap_ci,
    cluster_glm,
    human_scores,
    participant_summary,
    wilson_ci,
)
from analysis.simulate import simulate_study


@pytest.fixture(scope="module")
def small_study():
    trials, truth = simulate_study(
        (0.2, 0.3, 0.4),
        participants_per_model=10,
        trials_per_participant=40,
        fake_images_per_model=30,
        real_images=40,
        seed=3,
    )
    return main_trials(trials), truth


def statsmodels_two_way(trials: pd.DataFrame, weights: np.ndarray):
    """The same fit with statsmodels' own two-way clustered covariance."""
    exog = pd.get_dummies(trials["model"]).astype(float).to_numpy()
    groups = np.column_stack(
        [pd.factorize(trials["participant"])[0], pd.factorize(trials["stimulus"])[0]]
    )
    fit = sm.GLM(
        trials["error"].to_numpy(dtype=float),
        exog,
        family=sm.families.Binomial(),
        var_weights=weights,
    )
    return fit.fit(cov_type="cluster", cov_kwds={"groups": groups})


# statsmodels says two-way clustering with var_weights is "not fully
# supported"; its scores do include the weights, and the equal-weights case
# (where the warning is moot) is checked as well.
@pytest.mark.filterwarnings("ignore:cov_type not fully supported")
def test_cluster_glm_matches_statsmodels_equal_weights(small_study):
    trials, _ = small_study
    mine = cluster_glm(trials, weighted=False)
    reference = statsmodels_two_way(trials, np.ones(len(trials)))
    np.testing.assert_allclose(mine["logit"], reference.params, rtol=1e-9)
    np.testing.assert_allclose(mine["logit_se"], reference.bse, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:cov_type not fully supported")
def test_cluster_glm_matches_statsmodels_unequal_trials(small_study):
    trials, _ = small_study
    # Drop a tenth of the trials so participants differ in their numbers.
    trials = trials.drop(trials.sample(frac=0.1, random_state=1).index)
    cell = trials["participant"] + "|" + trials["model"]
    weights = 1.0 / cell.map(cell.value_counts()).to_numpy()
    weights *= len(weights) / weights.sum()
    mine = cluster_glm(trials)
    reference = statsmodels_two_way(trials, weights)
    np.testing.assert_allclose(mine["logit"], reference.params, rtol=1e-9)
    np.testing.assert_allclose(mine["logit_se"], reference.bse, rtol=1e-9)
    # The weighted estimate is the mean over participants of their rates.
    per_person = participants_from_trials(trials)
    means = per_person.groupby("model")["error_rate"].mean().to_numpy()
    np.testing.assert_allclose(mine["rate"], means, rtol=1e-12)


def test_cluster_glm_interval_is_wald_on_logit_with_t(small_study):
    trials, _ = small_study
    table = cluster_glm(trials, confidence=0.9)
    q = 1.833112932656237  # qt(0.95, df = 10 - 1) in R: 10 participants
    expected = 1 / (1 + np.exp(-(table["logit"] + q * table["logit_se"])))
    np.testing.assert_allclose(table["ci_high"], expected, rtol=1e-12)
    assert (table["n_participants"] == 10).all()
    assert (table["ci_low"] < table["rate"]).all()
    assert (table["rate"] < table["ci_high"]).all()


def test_cluster_glm_single_participant_is_undefined(small_study):
    trials, _ = small_study
    lonely = trials[
        (trials["model"] != "model_01") | (trials["participant"] == "model_01-p000")
    ]
    with pytest.warns(UserWarning, match="one participant"):
        table = cluster_glm(lonely)
    row = table.set_index("model").loc["model_01"]
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
    assert table.set_index("model").loc["model_02", "ci_low"] > 0


def test_cluster_glm_rejects_non_binary(small_study):
    trials, _ = small_study
    bad = trials.assign(error=trials["error"] * 2)
    with pytest.raises(ValueError, match="0 or 1"):
        cluster_glm(bad)
    with pytest.raises(ValueError, match="stimulus"):
        cluster_glm(trials.drop(columns="stimulus"))


def hand_participants() -> pd.DataFrame:
    rates = {"A": [0.1, 0.2, 0.3], "B": [0.4, 0.5]}
    rows = []
    for model, values in rates.items():
        for i, rate in enumerate(values):
            rows.append(
                {
                    "dataset": "d",
                    "participant": f"{model}{i}",
                    "model": model,
                    "n_trials": 10,
                    "n_correct": round(10 * (1 - rate)),
                    "error_rate": rate,
                    "n_fake_trials": 5,
                    "fake_error_rate": rate,
                    "n_real_trials": 5,
                    "real_error_rate": rate,
                    "answered_real_rate": 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_participant_summary_by_hand():
    table = participant_summary(hand_participants()).set_index("model")
    assert table.loc["A", "error_rate"] == pytest.approx(0.2)
    # sd(c(.1, .2, .3)) / sqrt(3) = 0.1 / sqrt(3)
    assert table.loc["A", "error_rate_sem"] == pytest.approx(0.1 / np.sqrt(3))
    # sd(c(.4, .5)) / sqrt(2) = 0.0707107 / 1.414214 = 0.05
    assert table.loc["B", "error_rate_sem"] == pytest.approx(0.05)
    assert table.loc["A", "n_participants"] == 3
    assert table.loc["B", "n_trials"] == 20


def test_bootstrap_is_seeded_and_close_to_scipy():
    from scipy.stats import bootstrap

    participants = hand_participants()
    first = bootstrap_ci(participants, n_boot=20_000, seed=7)
    again = bootstrap_ci(participants, n_boot=20_000, seed=7)
    pd.testing.assert_frame_equal(first, again)
    values = np.array([0.1, 0.2, 0.3])
    ref = bootstrap(
        (values,),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    row = first.set_index("model").loc["A"]
    # Different random streams: agree to Monte Carlo error (the resampled
    # means of 3 values take 10 distinct values, so the quantiles coincide).
    assert row["ci_low"] == pytest.approx(ref.low, abs=1e-9)
    assert row["ci_high"] == pytest.approx(ref.high, abs=1e-9)
    assert (first["ci_method"] == "participant_bootstrap").all()


def test_bootstrap_single_participant_is_nan_with_warning():
    participants = hand_participants()
    participants = participants[participants["participant"] != "B1"]
    with pytest.warns(UserWarning, match="one participant.*d/B"):
        table = bootstrap_ci(participants, n_boot=200)
    row = table.set_index("model").loc["B"]
    assert np.isnan(row["ci_low"]) and np.isnan(row["fake_ci_high"])


def test_wilson_matches_statsmodels():
    low, high = wilson_ci(np.array([3, 40, 0]), np.array([20, 100, 15]))
    ref_low, ref_high = proportion_confint([3, 40, 0], [20, 100, 15], method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-12)


def test_confidence_must_be_a_proportion():
    with pytest.raises(ValueError, match="between 0 and 1"):
        bootstrap_ci(hand_participants(), confidence=95)


def test_human_scores_columns_and_glm_method(small_study):
    trials, _ = small_study
    participants = participants_from_trials(trials)
    table = human_scores(participants, trials)
    from analysis.scores import HUMAN_SCORE_COLUMNS

    assert list(table.columns) == [c for c, _, _ in HUMAN_SCORE_COLUMNS]
    assert (table["ci_method"] == "glm_cluster2").all()
    assert table["mixed_error_rate"].isna().all()
    glm = cluster_glm(trials)
    np.testing.assert_allclose(table["ci_low"], glm["ci_low"])
    fake = cluster_glm(trials[~trials["is_real"].astype(bool)])
    np.testing.assert_allclose(table["fake_ci_high"], fake["ci_high"])
    np.testing.assert_allclose(table["error_rate"], glm["rate"], rtol=1e-12)
