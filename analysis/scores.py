"""Per-model human scores: error rates over participants and their intervals.

The human error rate of a model is the mean over participants of each
participant's error rate on that model's trials (the published definition,
Stein et al. 2023); the fake and real error rates are the same means over
generated and real trials. Their spread is reported as the SEM over
participants, the published form.

The reported 95% interval is not a pooled-trial Wilson interval, which
treats every trial as independent and covered the true rate in only 55% of
200 simulated studies shaped like the published one (63% for the fake and
70% for the real error rate; ``benchmarks/analysis/coverage.py``), where the
intervals below covered it in 95%:

- with per-trial data, a binomial GLM of the error on the model with
  two-way cluster-robust standard errors, clustered on participant and on
  image (:func:`cluster_glm`);
- with per-participant data only, a participant bootstrap
  (:func:`bootstrap_ci`), which cannot see the sharing of images and
  covered 92% in the same simulation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit, logit
from scipy.stats import norm
from scipy.stats import t as student_t

OUTCOMES = ("error_rate", "fake_error_rate", "real_error_rate")
# Prefix of each outcome's interval columns in the human scores table.
CI_PREFIX = {"error_rate": "", "fake_error_rate": "fake_", "real_error_rate": "real_"}
CI_METHODS = ("glm_cluster2", "participant_bootstrap")


def participant_summary(participants: pd.DataFrame) -> pd.DataFrame:
    """Mean and SEM over participants of each per-participant rate, per model.

    Parameters
    ----------
    participants : pandas.DataFrame
        The per-participant table of :func:`analysis.readers.read_participants`.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)``:

        - ``n_participants`` (int), ``n_trials`` (int, summed main trials).
        - ``error_rate``, ``fake_error_rate``, ``real_error_rate``,
          ``answered_real_rate`` (proportions): means over participants.
        - ``error_rate_sem``, ``fake_error_rate_sem``, ``real_error_rate_sem``
          (proportions): standard deviation over participants (``ddof=1``)
          divided by the square root of their number; NaN for one
          participant.

    Notes
    -----
    In R: ``aggregate(err_rt ~ model, d, function(x) c(mean(x),
    sd(x) / sqrt(length(x))))``.
    """
    if participants.empty:
        raise ValueError("no participants: nothing to score")
    grouped = participants.groupby(["dataset", "model"], sort=True, observed=True)
    table = grouped.agg(
        n_participants=("participant", "size"), n_trials=("n_trials", "sum")
    )
    for column in (*OUTCOMES, "answered_real_rate"):
        table[column] = grouped[column].mean()
    for column in OUTCOMES:
        table[f"{column}_sem"] = grouped[column].std(ddof=1) / np.sqrt(
            grouped[column].count()
        )
    return table.reset_index()


def bootstrap_ci(
    participants: pd.DataFrame,
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Participant-bootstrap percentile intervals of the per-model mean rates.

    Parameters
    ----------
    participants : pandas.DataFrame
        The per-participant table.
    confidence : float
        Coverage of the intervals, in (0, 1).
    n_boot : int
        Number of bootstrap resamples (at least 100).
    seed : int
        Seed of the random generator; the same seed gives the same intervals.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)`` with ``ci_low``, ``ci_high``,
        ``fake_ci_low``, ``fake_ci_high``, ``real_ci_low``, ``real_ci_high``
        (proportions) and ``ci_method`` = ``'participant_bootstrap'``.
        Models with one participant get NaN bounds and a warning.

    Notes
    -----
    Participants of a model are resampled with replacement ``n_boot`` times
    and the mean rate recomputed; the bounds are the ``(1 - confidence)/2``
    and ``(1 + confidence)/2`` quantiles. Resampling participants ignores
    the sharing of images between participants, which per-participant data
    cannot show; with per-trial data use :func:`cluster_glm`.
    In R: ``boot::boot.ci(boot::boot(x, function(x, i) mean(x[i]), R),
    type = "perc")``.

    References
    ----------
    Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap,
    ch. 13. Chapman & Hall.
    """
    _check_confidence(confidence)
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100, not {n_boot}")
    rng = np.random.default_rng(seed)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    rows = []
    for (dataset, model), group in participants.groupby(
        ["dataset", "model"], sort=True, observed=True
    ):
        row = {"dataset": dataset, "model": model}
        n = len(group)
        draws = rng.integers(0, n, size=(n_boot, n)) if n > 1 else None
        for column in OUTCOMES:
            values = group[column].to_numpy(dtype=float)
            prefix = CI_PREFIX[column]
            if draws is None or np.isnan(values).any():
                low = high = np.nan
            else:
                low, high = np.quantile(values[draws].mean(axis=1), tails)
            row[f"{prefix}ci_low"], row[f"{prefix}ci_high"] = low, high
        rows.append(row)
    table = pd.DataFrame(rows)
    table["ci_method"] = "participant_bootstrap"
    _warn_single(participants)
    return table


def cluster_glm(
    trials: pd.DataFrame,
    *,
    confidence: float = 0.95,
    outcome: str = "error",
    participant: str = "participant",
    image: str = "stimulus",
    weighted: bool = True,
) -> pd.DataFrame:
    """Per-model error rates from a binomial GLM with two-way clustered errors.

    Parameters
    ----------
    trials : pandas.DataFrame
        Answered main trials, one row per trial, with ``dataset``, ``model``,
        the participant and image columns and a 0/1 ``outcome`` column (see
        :func:`analysis.readers.main_trials`). Each dataset is fitted
        separately.
    confidence : float
        Coverage of the intervals, in (0, 1).
    outcome : str
        Name of the 0/1 column (1 = error).
    participant, image : str
        Columns identifying the two cluster dimensions.
    weighted : bool
        Weigh each trial by ``1 / n`` of its participant's trials on the
        model, so that the estimate is the mean over participants of their
        error rates (the published definition) even when participants have
        different numbers of trials. With equal numbers the weights are
        equal and change nothing.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)``: ``n_trials``, ``n_participants``,
        ``n_images`` (counts), ``rate`` (proportion), ``logit`` and
        ``logit_se`` (log-odds), ``ci_low``, ``ci_high`` (proportions).

    Notes
    -----
    The fit is ``logit P(error) = b_model`` (one coefficient per model), so
    ``b_model`` is the logit of the (weighted) mean error rate of the model.
    Its covariance is the two-way cluster-robust sandwich of Cameron,
    Gelbach and Miller (2011),
    ``V = V_participant + V_image - V_participant×image``, where each
    one-way ``V_g = c_g H⁻¹ (Σ_g s_g s_gᵀ) H⁻¹`` sums the score vectors
    ``s_g`` of cluster ``g``, ``H`` is the Fisher information and
    ``c_g = G/(G-1) · (N-1)/(N-K)`` the usual small-sample factor (as in
    statsmodels' ``cov_type='cluster'`` with a two-column ``groups``, which
    the tests compare against). The interval is Wald on the logit scale,
    ``expit(b ± q·se)``, with ``q`` the quantile of Student's t with
    ``G_m - 1`` degrees of freedom, ``G_m`` the model's participants (the
    few-clusters correction recommended by Cameron & Miller 2015; with 25
    participants ``q`` = 2.06 instead of 1.96, which brought the coverage in
    ``benchmarks/analysis/coverage.py`` from 0.93 to the nominal 0.95). A
    model with one participant or one image, or with no error (or only
    errors), gets NaN bounds and a warning naming it and the reason; its
    rate is still reported. So does every model of a dataset with a single
    participant or a single image, where no clustered variance exists.

    In R: ``sandwich::vcovCL(glm(error ~ 0 + model, binomial, data = d,
    weights = w), cluster = ~ participant + image, multi0 = FALSE)``.

    References
    ----------
    Cameron, A. C., Gelbach, J. B. & Miller, D. L. (2011). Robust inference
    with multiway clustering. Journal of Business & Economic Statistics,
    29(2), 238-249.

    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to
    cluster-robust inference. Journal of Human Resources, 50(2), 317-372.
    """
    _check_confidence(confidence)
    missing = [
        c
        for c in ("dataset", "model", participant, image, outcome)
        if c not in trials.columns
    ]
    if missing:
        raise ValueError(f"trials lack the column(s) {', '.join(missing)}")
    if trials.empty:
        raise ValueError("no trials: nothing to fit")
    values = trials[outcome]
    if not values.isin([0, 1]).all():
        raise ValueError(f"{outcome!r} must be 0 or 1 on every trial")
    frames = [
        _cluster_glm_one(group, confidence, participant, image, outcome, weighted)
        for _, group in trials.groupby("dataset", sort=True, observed=True)
    ]
    table = pd.concat(frames, ignore_index=True)
    _warn_glm(table)
    return table


def _cluster_glm_one(trials, confidence, participant, image, outcome, weighted):
    models = pd.Categorical(trials["model"])
    m = models.codes
    k = len(models.categories)
    people = pd.factorize(trials[participant])[0]
    images = pd.factorize(trials[image])[0]
    y = trials[outcome].to_numpy(dtype=float)
    n = len(y)

    if weighted:
        # Each participant's trials on a model weigh 1 in total, then scaled
        # so the weights average 1 (the sandwich does not depend on scale).
        cell = people.astype(np.int64) * k + m
        w = 1.0 / np.bincount(cell)[cell]
        w *= n / w.sum()
    else:
        w = np.ones(n)
    sum_w = np.bincount(m, weights=w, minlength=k)
    rate = np.bincount(m, weights=w * y, minlength=k) / sum_w
    # Scores of the logit coefficients and the (diagonal) information.
    score = w * (y - rate[m])
    info = sum_w * rate * (1 - rate)

    # Participant x image cells, coded as one integer each.
    pairs = pd.factorize(people.astype(np.int64) * (images.max() + 1) + images)[0]
    cov = np.zeros((k, k))
    for groups, sign in ((people, 1.0), (images, 1.0), (pairs, -1.0)):
        cov += sign * _cluster_meat(groups, m, score, k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = cov / np.outer(info, info)
        var = np.diag(cov).copy()
        eta = logit(rate)
    var[var < 0] = np.nan
    se = np.sqrt(var)
    counts = pd.DataFrame({"m": m, "p": people, "i": images})
    n_participants = counts.groupby("m")["p"].nunique().reindex(range(k)).to_numpy()
    n_images = counts.groupby("m")["i"].nunique().reindex(range(k)).to_numpy()
    undefined = (n_participants < 2) | (n_images < 2) | (rate <= 0) | (rate >= 1)
    se[undefined] = np.nan
    with np.errstate(invalid="ignore"):
        q = student_t.ppf((1 + confidence) / 2, np.maximum(n_participants - 1, 1))
    return pd.DataFrame(
        {
            "dataset": trials["dataset"].iloc[0],
            "model": models.categories.astype(str),
            "n_trials": np.bincount(m, minlength=k),
            "n_participants": n_participants,
            "n_images": n_images,
            "rate": rate,
            "logit": eta,
            "logit_se": se,
            "ci_low": expit(eta - q * se),
            "ci_high": expit(eta + q * se),
        }
    )


def _cluster_meat(groups, m, score, k, n) -> np.ndarray:
    """``c_g · Σ_g s_g s_gᵀ`` for one cluster dimension (a k × k matrix)."""
    n_groups = int(groups.max()) + 1
    if n_groups < 2 or n <= k:
        # One cluster (a pilot's one participant, a single image) or no
        # residual degree of freedom: the small-sample factor, and with it
        # the variance, is undefined. The caller reports those models.
        return np.full((k, k), np.nan)
    # Cluster-by-model sums of the scores: a sparse n_groups × k matrix.
    sums = sparse.csr_array(
        (score, (groups, m)), shape=(n_groups, k)
    )  # duplicates are summed
    meat = (sums.T @ sums).toarray()
    correction = n_groups / (n_groups - 1.0) * (n - 1.0) / (n - k)
    return correction * meat


def wilson_ci(
    n_errors: np.ndarray | float, n_trials: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a pooled proportion (for comparison only).

    This treats every trial as independent; it is too narrow for human
    error rates and is not the reported interval (see the module docstring).
    It is here for the coverage benchmark.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper bounds, proportions.

    Notes
    -----
    ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``. In R:
    ``prop.test(x, n, correct = FALSE)$conf.int``.

    References
    ----------
    Wilson, E. B. (1927). Probable inference, the law of succession, and
    statistical inference. JASA, 22(158), 209-212.
    """
    _check_confidence(confidence)
    z = norm.ppf((1 + confidence) / 2)
    x = np.asarray(n_errors, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence}")


def _warn_single(participants: pd.DataFrame) -> None:
    counts = participants.groupby(["dataset", "model"], observed=True).size()
    single = counts[counts < 2]
    if not single.empty:
        names = ", ".join(f"{d}/{m}" for d, m in single.index)
        warnings.warn(
            f"models with one participant have no defined interval (NaN): {names}",
            stacklevel=3,
        )


def _glm_gaps(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The models of a :func:`cluster_glm` table without an interval, by reason."""
    missing = table["logit_se"].isna()
    single = table["n_participants"] < 2
    one_image = ~single & (table["n_images"] < 2)
    return [
        ("one participant", table[single]),
        ("one image", table[one_image]),
        (
            "an error rate of 0 or 1, or a two-way variance that came out negative",
            table[missing & ~single & ~one_image],
        ),
    ]


def _warn_glm(table: pd.DataFrame, interval: str = "") -> None:
    """Warn, per reason, of the models whose interval is NaN.

    ``interval`` names the interval when it is not that of the error rate
    (``'fake_error_rate'``, ``'real_error_rate'``).
    """
    of = f" of {interval}" if interval else ""
    for reason, rows in _glm_gaps(table):
        if rows.empty:
            continue
        if reason.startswith("one "):
            names = ", ".join(f"{r.dataset}/{r.model}" for r in rows.itertuples())
            message = f"models with {reason} have no defined interval{of} (NaN)"
        else:
            names = ", ".join(
                f"{r.dataset}/{r.model} (rate {r.rate:.3g})" for r in rows.itertuples()
            )
            message = f"no interval{of} (NaN) for models with {reason}"
        warnings.warn(f"{message}: {names}", stacklevel=3)


# The columns of human_scores.csv: (name, unit, meaning). The command's --help
# and the docs are generated from this table, so it is the one description.
HUMAN_SCORE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "name", "image domain of the study"),
    ("model", "name", "generative model"),
    ("n_participants", "count", "participants left after exclusions"),
    ("n_trials", "count", "main trials judged (real and generated)"),
    ("n_images", "count", "distinct images judged; empty without per-trial data"),
    (
        "error_rate",
        "proportion",
        "human error rate: mean over participants of their error rate",
    ),
    ("error_rate_sem", "proportion", "SEM over participants, sd(ddof=1)/sqrt(n)"),
    ("ci_low", "proportion", "lower bound of the interval of error_rate"),
    ("ci_high", "proportion", "upper bound of the interval of error_rate"),
    (
        "ci_method",
        "name",
        "glm_cluster2 (binomial GLM, errors clustered on participant and "
        "image; per-trial data) or participant_bootstrap (percentile; "
        "per-participant data)",
    ),
    ("ci_level", "proportion", "nominal coverage of the intervals (0.95)"),
    ("fake_error_rate", "proportion", "mean over participants: generated judged real"),
    ("fake_error_rate_sem", "proportion", "SEM over participants"),
    ("fake_ci_low", "proportion", "lower bound of the interval of fake_error_rate"),
    ("fake_ci_high", "proportion", "upper bound of the interval of fake_error_rate"),
    ("real_error_rate", "proportion", "mean over participants: real judged generated"),
    ("real_error_rate_sem", "proportion", "SEM over participants"),
    ("real_ci_low", "proportion", "lower bound of the interval of real_error_rate"),
    ("real_ci_high", "proportion", "upper bound of the interval of real_error_rate"),
    ("answered_real_rate", "proportion", "mean over participants: answered real"),
    ("d_prime", "z", "mean over participants of d' (log-linear correction)"),
    ("d_prime_sem", "z", "SEM over participants of d'"),
    ("criterion", "z", "mean over participants of c; positive leans to 'real'"),
    ("criterion_sem", "z", "SEM over participants of c"),
    ("rt_median_ms", "ms", "median response time of the model's trials (per-trial)"),
    (
        "mixed_error_rate",
        "proportion",
        "mixed fit: marginal error rate over participants and images "
        "(--mixed; empty otherwise)",
    ),
    ("mixed_logit_correct", "log-odds", "mixed fit: correct at zero random effects"),
    (
        "mixed_logit_sd_vb",
        "log-odds",
        "VB posterior SD of mixed_logit_correct; far below glmer's standard "
        "error, not an interval",
    ),
    ("mixed_participant_sd", "log-odds", "mixed fit: SD of participant intercepts"),
    ("mixed_image_sd", "log-odds", "mixed fit: SD of image intercepts"),
)


def human_scores(
    participants: pd.DataFrame,
    trials: pd.DataFrame | None = None,
    *,
    mixed: pd.DataFrame | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """The per-model human scores table (``human_scores.csv``).

    Parameters
    ----------
    participants : pandas.DataFrame
        The per-participant table after exclusions, with or without the SDT
        columns of :func:`analysis.sdt.participant_sdt`.
    trials : pandas.DataFrame, optional
        Answered main trials after exclusions with an ``error`` column
        (:func:`analysis.readers.main_trials`, then
        :func:`analysis.readers.assign_real_trials`). Datasets found here get
        intervals from :func:`cluster_glm`; the others from
        :func:`bootstrap_ci`.
    mixed : pandas.DataFrame, optional
        ``MixedFit.models`` of :func:`analysis.mixed.mixed_fit`.
    confidence : float
        Coverage of the intervals.
    n_boot, seed : int
        Bootstrap resamples and seed, for datasets without per-trial data.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)`` with the columns of
        :data:`HUMAN_SCORE_COLUMNS` (name, unit and meaning of each are
        listed there and in ``analysis fit --help``).

    Raises
    ------
    ValueError
        If there are no participants.
    """
    from analysis.sdt import model_sdt

    table = participant_summary(participants)
    with_trials = set() if trials is None else set(trials["dataset"].unique())
    intervals = []
    if with_trials:
        intervals.append(_glm_intervals(trials, confidence))
    rest = participants[~participants["dataset"].isin(with_trials)]
    if not rest.empty:
        intervals.append(
            bootstrap_ci(rest, confidence=confidence, n_boot=n_boot, seed=seed)
        )
    keys = ["dataset", "model"]
    table = table.merge(pd.concat(intervals, ignore_index=True), on=keys, how="left")
    table["ci_level"] = confidence
    table = table.merge(model_sdt(participants), on=keys, how="left")
    if trials is not None and "rt_ms" in trials.columns:
        rt = (
            trials.groupby(keys, observed=True)["rt_ms"].median().rename("rt_median_ms")
        )
        table = table.merge(rt.astype(float).reset_index(), on=keys, how="left")
    if mixed is not None:
        renamed = mixed.rename(
            columns={
                "error_rate": "mixed_error_rate",
                "logit_correct": "mixed_logit_correct",
                "logit_sd_vb": "mixed_logit_sd_vb",
                "participant_sd": "mixed_participant_sd",
                "image_sd": "mixed_image_sd",
            }
        )
        mixed_columns = [c for c, _, _ in HUMAN_SCORE_COLUMNS if c.startswith("mixed")]
        table = table.merge(renamed[keys + mixed_columns], on=keys, how="left")
    for column, _, _ in HUMAN_SCORE_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    return table[[c for c, _, _ in HUMAN_SCORE_COLUMNS]]


def _glm_intervals(trials: pd.DataFrame, confidence: float) -> pd.DataFrame:
    keys = ["dataset", "model"]
    parts = {}
    fits: dict[str, pd.DataFrame] = {}
    with warnings.catch_warnings():
        # One warning per model is enough: the overall fit reports it below.
        warnings.simplefilter("ignore")
        for column, subset in (
            ("error_rate", trials),
            ("fake_error_rate", trials[~trials["is_real"].astype(bool)]),
            ("real_error_rate", trials[trials["is_real"].astype(bool)]),
        ):
            if subset.empty:
                continue
            fit = cluster_glm(subset, confidence=confidence)
            prefix = CI_PREFIX[column]
            parts[column] = fit[keys].assign(
                **{
                    f"{prefix}ci_low": fit["ci_low"],
                    f"{prefix}ci_high": fit["ci_high"],
                }
            )
            if column == "error_rate":
                parts[column]["n_images"] = fit["n_images"]
                overall = fit
            else:
                fits[column] = fit
    _warn_glm(overall)
    # The fake and real intervals can be missing where the overall one is
    # not (a single real image, no error on generated images): say so once.
    has_interval = overall.loc[overall["logit_se"].notna(), keys]
    for column, fit in fits.items():
        _warn_glm(fit.merge(has_interval, on=keys), interval=column)
    table = parts["error_rate"]
    for column in ("fake_error_rate", "real_error_rate"):
        if column in parts:
            table = table.merge(parts[column], on=keys, how="left")
    table["ci_method"] = "glm_cluster2"
    return table


IMAGE_SCORE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "name", "image domain"),
    ("model", "name", "generative model"),
    ("n_fake_images", "count", "generated images judged"),
    ("n_real_images", "count", "real images judged with this model's images"),
    ("n_judgements", "count", "judgements of those images"),
    ("pooled_error_rate", "proportion", "errors / judgements, all images"),
    ("pooled_fake_error_rate", "proportion", "generated images: judged real"),
    ("pooled_real_error_rate", "proportion", "real images: judged generated"),
    ("fake_image_error_sd", "proportion", "SD over generated images of their rate"),
    ("real_image_error_sd", "proportion", "SD over real images of their rate"),
)


def image_summary(images: pd.DataFrame) -> pd.DataFrame:
    """Per-model summaries of per-image judgements (``image_scores.csv``).

    Parameters
    ----------
    images : pandas.DataFrame
        The per-image table of :func:`analysis.readers.read_images` or
        :func:`analysis.readers.images_from_trials`.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)`` with the columns of
        :data:`IMAGE_SCORE_COLUMNS`.

    Notes
    -----
    Pooled rates weigh every judgement equally; they are not the human error
    rate (a mean over participants) and carry no participant-level
    uncertainty, which per-image data cannot show. The SD over images of
    their error rates mixes true differences in difficulty with binomial
    noise (about 1.75 judgements per image in the published release).
    """
    keys = ["dataset", "model"]
    frame = images.assign(is_real=images["is_real"].astype(bool))
    grouped = frame.groupby(keys, sort=True, observed=True)
    table = pd.DataFrame(
        {
            "n_fake_images": grouped["is_real"].apply(lambda s: int((~s).sum())),
            "n_real_images": grouped["is_real"].sum().astype(int),
            "n_judgements": grouped["n_judgements"].sum(),
            "pooled_error_rate": grouped["n_errors"].sum()
            / grouped["n_judgements"].sum(),
        }
    )
    for prefix, is_real in (("fake", False), ("real", True)):
        part = frame[frame["is_real"] == is_real].groupby(keys, observed=True)
        table[f"pooled_{prefix}_error_rate"] = (
            part["n_errors"].sum() / part["n_judgements"].sum()
        )
        table[f"{prefix}_image_error_sd"] = part["error_rate"].std(ddof=1)
    return table.reset_index()[[c for c, _, _ in IMAGE_SCORE_COLUMNS]]


def _columns_doc(title: str, columns: tuple[tuple[str, str, str], ...]) -> str:
    lines = ["", title, "-" * len(title)]
    lines += [f"``{name}`` ({unit})\n    {meaning}" for name, unit, meaning in columns]
    return "\n".join(lines) + "\n"


# The column tables above are the single description of both output files;
# the module's documentation lists them from there.
if __doc__ is not None:
    __doc__ += _columns_doc("Columns of human_scores.csv", HUMAN_SCORE_COLUMNS)
    __doc__ += _columns_doc("Columns of image_scores.csv", IMAGE_SCORE_COLUMNS)
