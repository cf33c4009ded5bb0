"""Mixed-effects logistic fit of trial correctness with crossed random effects.

How well is each model judged once participants' skill and images'
difficulty are taken out? The fit is

    correct ~ model + (1 | participant) + (1 | image)

(lme4 notation), a logistic regression with a fixed effect per model and
normal random intercepts for participants and images, fitted per dataset by
variational Bayes with statsmodels' ``BinomialBayesMixedGLM.fit_vb``. The
ELBO and its gradient are evaluated by :class:`VectorizedBinomialBayesMixedGLM`,
which computes the same functions as statsmodels (checked in the tests) about
five times faster at the published scale.

What to expect from it, measured on the reference data set in
``tests/data/analysis/`` against R's lme4 ``glmer`` (Laplace):

- fixed effects and the random-effect standard deviations agree with
  ``glmer`` to about 0.02 on the logit scale;
- the fixed effects' posterior SDs (``sd_vb``) are far smaller than
  ``glmer``'s standard errors (0.019 against 0.109 for the intercept and
  about 0.036 against 0.143 for the model contrasts on that data, 1/5 to
  1/4; the project brief expected about half):
  the mean-field approximation ignores the correlation between fixed and
  random effects. They are reported under that name and never turned into
  intervals; the reported intervals of human error rates come from
  :func:`analysis.scores.cluster_glm`;
- ``fit_map`` (the posterior mode, Laplace) fails on such data: on the
  reference data it stops with a ConvergenceWarning (gradient norm about
  1e9), one random-effect SD collapsed to zero and fixed effects off by up
  to 1.4; it is not used.

The model coefficients are conditional on zero random effects (a typical
participant on a typical image). The per-model error rates a reader expects
are marginal: averaged over the population of participants and images,
``1 - E[expit(eta_m + u + v)]`` with ``u + v ~ N(0, sd_p² + sd_i²)``,
computed by Gauss-Hermite quadrature (:func:`analysis.simulate.marginal_error_rate`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, glw
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from analysis.simulate import marginal_error_rate

COMPONENTS = ("participant", "image")


@dataclass
class MixedFit:
    """The result of :func:`mixed_fit`, one block of rows per dataset.

    Attributes
    ----------
    fixed : pandas.DataFrame
        ``dataset``, ``term`` (``Intercept`` = the first model in sorted
        order, then ``model[T.<name>]`` contrasts), ``estimate`` (posterior
        mean, log-odds of a correct response), ``sd_vb`` (VB posterior SD,
        log-odds; too small, see the module docstring).
    variance : pandas.DataFrame
        ``dataset``, ``component`` (``participant`` or ``image``), ``sd``
        (standard deviation of the random intercepts, log-odds: ``exp`` of
        the posterior mean of the log SD), ``log_sd_sd_vb`` (VB posterior SD
        of the log SD), ``n_levels`` (participants or images).
    models : pandas.DataFrame
        ``dataset``, ``model``, ``logit_correct`` (log-odds of a correct
        response at zero random effects), ``logit_sd_vb`` (its VB SD,
        log-odds), ``conditional_error_rate`` (error rate at zero random
        effects, proportion), ``error_rate`` (marginal error rate over
        participants and images, proportion), ``participant_sd`` and
        ``image_sd`` (log-odds, repeated per model), ``n_trials``.
    """

    fixed: pd.DataFrame
    variance: pd.DataFrame
    models: pd.DataFrame


def mixed_fit(
    trials: pd.DataFrame,
    *,
    participant: str = "participant",
    image: str = "stimulus",
    fe_prior_sd: float = 2.0,
    vc_prior_sd: float = 1.0,
    seed: int = 0,
    progress: bool | None = None,
) -> MixedFit:
    """Fit ``correct ~ model + (1|participant) + (1|image)`` per dataset.

    Parameters
    ----------
    trials : pandas.DataFrame
        Answered main trials, one row per trial, with ``dataset``, ``model``,
        the participant and image columns and a boolean or 0/1 ``correct``.
    participant, image : str
        Columns identifying the crossed random effects.
    fe_prior_sd : float
        Prior SD of each fixed effect (log-odds); statsmodels' ``fe_p``.
    vc_prior_sd : float
        Prior SD of the log of each random-effect SD; statsmodels' ``vcp_p``.
    seed : int
        Seed for the random part of the VB starting values (statsmodels'
        ``rng``); the same seed gives the same fit.
    progress : bool or None
        Show a progress bar over datasets (None: only on a terminal).

    Returns
    -------
    MixedFit
        Fixed effects, variance components and per-model marginal error
        rates (see :class:`MixedFit` for every column and unit).

    Raises
    ------
    ValueError
        For missing columns (named), a dataset whose responses are all
        correct or all wrong, or no trials.

    Warns
    -----
    UserWarning
        When the VB optimisation of a dataset does not converge.

    Notes
    -----
    The fixed effects use treatment coding with the first model (sorted by
    name) as reference, as R does, so ``estimate`` compares directly with
    ``fixef(glmer(...))``. VB starts from statsmodels' default (zero means,
    log posterior SDs near -0.5 with seeded noise); starting from GLM
    estimates was tried and did not reduce the number of iterations. The
    optimiser is L-BFGS-B: the default BFGS keeps a dense inverse Hessian
    over twice the number of random effects, which does not fit in memory
    at the published scale. The time grows faster than the number of
    trials (see ``benchmarks/analysis/README.md``), so ``analysis fit`` runs
    it only when asked (``--mixed``).

    In R: ``lme4::glmer(correct ~ model + (1 | participant) + (1 | image),
    data = d, family = binomial)``.

    References
    ----------
    Bates, D., Mächler, M., Bolker, B. & Walker, S. (2015). Fitting linear
    mixed-effects models using lme4. Journal of Statistical Software, 67(1).

    Blei, D. M., Kucukelbir, A. & McAuliffe, J. D. (2017). Variational
    inference: a review for statisticians. JASA, 112(518), 859-877.
    """
    missing = [
        c
        for c in ("dataset", "model", participant, image, "correct")
        if c not in trials.columns
    ]
    if missing:
        raise ValueError(f"trials lack the column(s) {', '.join(missing)}")
    if trials.empty:
        raise ValueError("no trials: nothing to fit")
    fixed, variance, models = [], [], []
    groups = list(trials.groupby("dataset", sort=True, observed=True))
    for dataset, group in tqdm(
        groups, desc="mixed fit", unit="dataset", disable=_quiet(progress)
    ):
        f, v, m = _fit_one(
            group, dataset, participant, image, fe_prior_sd, vc_prior_sd, seed
        )
        fixed.append(f)
        variance.append(v)
        models.append(m)
    return MixedFit(
        fixed=pd.concat(fixed, ignore_index=True),
        variance=pd.concat(variance, ignore_index=True),
        models=pd.concat(models, ignore_index=True),
    )


def _quiet(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _fit_one(trials, dataset, participant, image, fe_prior_sd, vc_prior_sd, seed):
    y = trials["correct"].astype(float).to_numpy()
    if y.min() == y.max():
        raise ValueError(
            f"dataset {dataset}: every response is "
            f"{'correct' if y[0] else 'wrong'}; a logistic fit needs both"
        )
    models = pd.Categorical(trials["model"].astype(str))
    names = list(models.categories)
    k = len(names)
    n = len(y)
    rows = np.arange(n)
    # Treatment coding: intercept = first model, then one contrast per model.
    exog = np.zeros((n, k))
    exog[:, 0] = 1.0
    contrast = models.codes > 0
    exog[rows[contrast], models.codes[contrast]] = 1.0
    people, people_names = pd.factorize(trials[participant])
    images, image_names = pd.factorize(trials[image])
    n_p, n_i = len(people_names), len(image_names)
    exog_vc = sparse.hstack(
        [
            sparse.csr_array((np.ones(n), (rows, people)), shape=(n, n_p)),
            sparse.csr_array((np.ones(n), (rows, images)), shape=(n, n_i)),
        ]
    ).tocsr()
    ident = np.r_[np.zeros(n_p, dtype=int), np.ones(n_i, dtype=int)]
    fit = VectorizedBinomialBayesMixedGLM(
        y,
        exog,
        exog_vc,
        ident,
        vcp_p=vc_prior_sd,
        fe_p=fe_prior_sd,
        fep_names=["Intercept"] + [f"model[T.{m}]" for m in names[1:]],
        vcp_names=list(COMPONENTS),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        # The optimiser's work is on long vectors, where BLAS threads only add
        # overhead; on a busy 2-core machine two threads made each L-BFGS-B
        # step about 50 times slower than one.
        with threadpool_limits(limits=1, user_api="blas"):
            result = fit.fit_vb(
                fit_method="L-BFGS-B", minim_opts={"maxiter": 15000}, rng=seed
            )
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        warnings.warn(
            f"mixed fit of dataset {dataset}: the VB optimisation did not converge; "
            "its estimates may be off",
            stacklevel=3,
        )

    fe_mean, fe_sd = np.asarray(result.fe_mean), np.asarray(result.fe_sd)
    vc_sd_est = np.exp(np.asarray(result.vcp_mean))
    fixed = pd.DataFrame(
        {
            "dataset": dataset,
            "term": fit.fep_names,
            "estimate": fe_mean,
            "sd_vb": fe_sd,
        }
    )
    variance = pd.DataFrame(
        {
            "dataset": dataset,
            "component": list(COMPONENTS),
            "sd": vc_sd_est,
            "log_sd_sd_vb": np.asarray(result.vcp_sd),
            "n_levels": [n_p, n_i],
        }
    )
    cell = fe_mean[0] + np.r_[0.0, fe_mean[1:]]
    # Mean-field VB treats the coefficients as independent.
    cell_sd = np.sqrt(fe_sd[0] ** 2 + np.r_[0.0, fe_sd[1:] ** 2])
    total_sd = float(np.hypot(*vc_sd_est))
    per_model = pd.DataFrame(
        {
            "dataset": dataset,
            "model": names,
            "logit_correct": cell,
            "logit_sd_vb": cell_sd,
            "conditional_error_rate": expit(-cell),
            "error_rate": marginal_error_rate(-cell, total_sd),
            "participant_sd": vc_sd_est[0],
            "image_sd": vc_sd_est[1],
            "n_trials": np.bincount(models.codes, minlength=k),
        }
    )
    return fixed, variance, per_model


class VectorizedBinomialBayesMixedGLM(BinomialBayesMixedGLM):
    """statsmodels' binomial VB mixed GLM with a vectorised ELBO and gradient.

    The objective is the same function, evaluated the same way (the same
    Gauss-Legendre rule ``glw`` on ``[-rng, rng]``); only the loop over the
    quadrature nodes is turned into array operations, and the sparse
    products with the random-effects design are done once per call instead
    of once per node. ``fit_vb`` is statsmodels' own. The tests check both
    functions against the parent class's on random arguments.
    """

    def _sparse_exog(self) -> tuple[sparse.csr_array, sparse.csr_array]:
        # The parent multiplies by the dense fixed-effects design, and squares
        # it, on every call; at the published scale (207,200 x 41, two
        # non-zeros per row) sparse copies made once are far cheaper.
        if getattr(self, "_exog_sparse", None) is None:
            self._exog_sparse = sparse.csr_array(self.exog)
            self._exog_sparse_sq = sparse.csr_array(self.exog**2)
        return self._exog_sparse, self._exog_sparse_sq

    def _lp_stats(self, fep_mean, fep_sd, vc_mean, vc_sd):
        exog, exog_sq = self._sparse_exog()
        tm = exog @ fep_mean + self.exog_vc @ vc_mean
        tv = exog_sq @ fep_sd**2 + self.exog_vc2 @ vc_sd**2
        return tm, tv

    def _quadrature(self):
        nodes = self.rng * np.array([w[1] for w in glw])
        # Weight of each node for E[f(Z)], Z ~ N(0, 1), as in the parent.
        weights = (
            self.rng
            * np.array([w[0] for w in glw])
            * np.exp(-(nodes**2) / 2)
            / np.sqrt(2 * np.pi)
        )
        return nodes, weights

    def vb_elbo(self, vb_mean, vb_sd):
        """The ELBO; see ``BinomialBayesMixedGLM.vb_elbo``."""
        fep_mean, vcp_mean, vc_mean = self._unpack(vb_mean)
        fep_sd, vcp_sd, vc_sd = self._unpack(vb_sd)
        tm, tv = self._lp_stats(fep_mean, fep_sd, vc_mean, vc_sd)
        nodes, weights = self._quadrature()
        # n x nodes: -log(1 + exp(eta)) at each node.
        eta = tm[:, None] + np.sqrt(tv)[:, None] * nodes[None, :]
        value = -(np.logaddexp(0.0, eta) @ weights).sum() + self.endog @ tm
        value += self._elbo_common(fep_mean, fep_sd, vcp_mean, vcp_sd, vc_mean, vc_sd)
        return (
            value
            + np.sum(np.log(fep_sd))
            + np.sum(np.log(vcp_sd))
            + np.sum(np.log(vc_sd))
        )

    def vb_elbo_grad(self, vb_mean, vb_sd):
        """The ELBO's gradient; see ``BinomialBayesMixedGLM.vb_elbo_grad``."""
        fep_mean, vcp_mean, vc_mean = self._unpack(vb_mean)
        fep_sd, vcp_sd, vc_sd = self._unpack(vb_sd)
        tm, tv = self._lp_stats(fep_mean, fep_sd, vc_mean, vc_sd)
        nodes, weights = self._quadrature()
        root = np.sqrt(tv)
        slope = -expit(tm[:, None] + root[:, None] * nodes[None, :])  # n x nodes
        by_mean = slope @ weights
        by_sd = (slope @ (weights * nodes)) / root

        exog, exog_sq = self._sparse_exog()
        fep_mean_grad = exog.T @ (by_mean + self.endog)
        vc_mean_grad = self.exog_vc.T @ (by_mean + self.endog)
        fep_sd_grad = exog_sq.T @ by_sd * fep_sd
        vc_sd_grad = np.asarray(self.exog_vc2.T @ by_sd).ravel() * vc_sd

        common = self._elbo_grad_common(
            fep_mean, fep_sd, vcp_mean, vcp_sd, vc_mean, vc_sd
        )
        fep_mean_grad = fep_mean_grad + common[0]
        fep_sd_grad = fep_sd_grad + common[1] + 1 / fep_sd
        vcp_mean_grad = common[2]
        vcp_sd_grad = common[3] + 1 / vcp_sd
        vc_mean_grad = vc_mean_grad + common[4]
        vc_sd_grad = vc_sd_grad + common[5] + 1 / vc_sd
        return (
            np.concatenate((fep_mean_grad, vcp_mean_grad, vc_mean_grad)),
            np.concatenate((fep_sd_grad, vcp_sd_grad, vc_sd_grad)),
        )
