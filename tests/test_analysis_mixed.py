"""The VB mixed fit against lme4's glmer on a fixed simulated crossed data set.

Data: tests/data/analysis/crossed_sim.csv, drawn once with
``analysis.simulate.simulate_study((0.15, 0.25, 0.35, 0.45),
real_error_rate=None, participants_per_model=20, trials_per_participant=200,
fake_images_per_model=100, real_images=200, seed=2024)`` (ids shortened):
4 models x 20 participants x 200 trials = 16,000 trials on 600 images,
every trial following ``logit P(correct) = b_model + u_participant + v_image``.

Reference values: tests/data/analysis/crossed_sim_glmer.R, run once with
R 4 and lme4 1.1.31:

    glmer(correct ~ model + (1 | participant) + (1 | image),
          data = d, family = binomial)

printed (10 significant digits)

    fixef:  (Intercept) 2.131589799  modelm2 -1.010508275
            modelm3 -1.500577476     modelm4 -2.066682802
    SE:     0.1091040142 0.1431307455 0.1424858700 0.1423534516
    sdcor:  image 0.8647182796  participant 0.3830238305
    marginal error rate (integrate over N(0, sum of variances)):
            m1 0.1374259782  m2 0.2790648589  m3 0.3701873909  m4 0.4863720900
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.special import expit

from analysis.mixed import mixed_fit
from analysis.simulate import marginal_error_rate

DATA = Path(__file__).parent / "data" / "analysis" / "crossed_sim.csv"

GLMER_FIXEF = {
    "Intercept": 2.131589799,
    "model[T.m2]": -1.010508275,
    "model[T.m3]": -1.500577476,
    "model[T.m4]": -2.066682802,
}
GLMER_SE = {
    "Intercept": 0.1091040142,
    "model[T.m2]": 0.1431307455,
    "model[T.m3]": 0.1424858700,
    "model[T.m4]": 0.1423534516,
}
GLMER_SD = {"participant": 0.3830238305, "image": 0.8647182796}
GLMER_MARGINAL = {
    "m1": 0.1374259782,
    "m2": 0.2790648589,
    "m3": 0.3701873909,
    "m4": 0.4863720900,
}
TOLERANCE = 0.02  # logit scale, from the issue


@pytest.fixture(scope="module")
def fitted():
    data = pd.read_csv(DATA).rename(columns={"image": "stimulus"})
    data["dataset"] = "sim"
    return mixed_fit(data, seed=0)


def test_reference_data_is_small_and_crossed():
    assert DATA.stat().st_size < 500_000
    data = pd.read_csv(DATA)
    assert len(data) == 16_000
    # Real images are shared between models: participants x images is crossed.
    assert data[data["is_real"] == 1].groupby("image")["model"].nunique().max() > 1


def test_fixed_effects_agree_with_glmer(fitted):
    fixed = fitted.fixed.set_index("term")["estimate"]
    for term, value in GLMER_FIXEF.items():
        assert fixed[term] == pytest.approx(value, abs=TOLERANCE), term


def test_variance_components_agree_with_glmer(fitted):
    sd = fitted.variance.set_index("component")["sd"]
    for component, value in GLMER_SD.items():
        assert sd[component] == pytest.approx(value, abs=TOLERANCE), component
    assert list(fitted.variance["n_levels"]) == [80, 600]


def test_marginal_error_rates_agree_with_glmer(fitted):
    models = fitted.models.set_index("model")
    for model, value in GLMER_MARGINAL.items():
        logit_vb = np.log(models.loc[model, "error_rate"]) - np.log1p(
            -models.loc[model, "error_rate"]
        )
        logit_ref = np.log(value) - np.log1p(-value)
        assert logit_vb == pytest.approx(logit_ref, abs=TOLERANCE), model
    # The marginal rate is above the conditional one when the latter is < 0.5.
    assert (models["error_rate"] > models["conditional_error_rate"]).all()


def test_vb_posterior_sds_are_far_below_glmer_standard_errors(fitted):
    """The documented limitation: VB SDs are not standard errors."""
    sd_vb = fitted.fixed.set_index("term")["sd_vb"]
    for term, se in GLMER_SE.items():
        assert sd_vb[term] < 0.5 * se, term


def test_marginal_error_rate_matches_quadrature():
    for eta, sd in ((-1.0, 0.9), (0.3, 2.0), (-2.5, 3.0), (1.5, 0.0)):
        expected, _ = integrate.quad(
            lambda z, eta=eta, sd=sd: (
                expit(eta + sd * z) * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
            ),
            -np.inf,
            np.inf,
            epsabs=1e-14,
        )
        assert marginal_error_rate(eta, sd) == pytest.approx(expected, abs=1e-10)


def test_all_correct_dataset_is_an_error():
    data = pd.read_csv(DATA).rename(columns={"image": "stimulus"}).head(400)
    data["dataset"] = "sim"
    data["correct"] = 1
    with pytest.raises(ValueError, match="every response is correct"):
        mixed_fit(data)


def test_missing_column_is_named():
    data = pd.read_csv(DATA).head(10)
    with pytest.raises(ValueError, match="dataset, stimulus"):
        mixed_fit(data)


def test_vectorized_elbo_and_gradient_equal_statsmodels():
    """The speed-up changes how the ELBO is evaluated, not what it is."""
    from scipy import sparse
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    from analysis.mixed import VectorizedBinomialBayesMixedGLM

    data = pd.read_csv(DATA).head(3000)
    n = len(data)
    models = pd.Categorical(data["model"]).codes
    exog = np.zeros((n, models.max() + 1))
    exog[:, 0] = 1.0
    exog[np.flatnonzero(models > 0), models[models > 0]] = 1.0
    people = pd.factorize(data["participant"])[0]
    images = pd.factorize(data["image"])[0]
    rows = np.arange(n)
    exog_vc = sparse.hstack(
        [
            sparse.csr_array((np.ones(n), (rows, people))),
            sparse.csr_array((np.ones(n), (rows, images))),
        ]
    ).tocsr()
    ident = np.r_[np.zeros(people.max() + 1, int), np.ones(images.max() + 1, int)]
    y = data["correct"].to_numpy(dtype=float)
    parent = BinomialBayesMixedGLM(y, exog, exog_vc, ident)
    fast = VectorizedBinomialBayesMixedGLM(y, exog, exog_vc, ident)
    rng = np.random.default_rng(0)
    for _ in range(3):
        mean = rng.normal(0, 0.7, exog.shape[1] + 2 + exog_vc.shape[1])
        sd = np.exp(rng.normal(-1, 0.5, mean.size))
        assert fast.vb_elbo(mean, sd) == pytest.approx(
            parent.vb_elbo(mean, sd), rel=1e-12
        )
        for mine, theirs in zip(
            fast.vb_elbo_grad(mean, sd), parent.vb_elbo_grad(mean, sd), strict=True
        ):
            np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)
