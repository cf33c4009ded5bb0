"""Simulated crossed studies with known error rates, for tests and benchmarks.

What would a study look like if each trial's error followed a logistic
mixed model with participant and image effects? :func:`simulate_study`
draws one in the per-trial export schema, and :func:`marginal_error_rate`
gives the population error rates it was drawn from, so that intervals can
be checked for coverage.

The defaults follow the published study (Stein et al. 2023): a between
design with 25 participants per model and 200 trials each, half real. The
spread of participants (0.45 on the logit scale) and of images (0.9) are
moment estimates from the published per-participant and per-image files:
the between-participant standard deviation of error rates beyond binomial
noise, and the between-image one, divided by ``p (1 - p)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, logit

# Gauss-Hermite nodes for E[f(Z)], Z ~ N(0, 1). The logistic function has
# poles off the real axis, so convergence is slow for wide spreads: against
# scipy.integrate.quad, 40 nodes err by 1e-6 at SD 3, 150 nodes by 1e-11.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(150)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def marginal_error_rate(
    logit_error: float | Sequence[float] | np.ndarray,
    sd: float | Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Error rate averaged over normal random effects on the logit scale.

    Parameters
    ----------
    logit_error : float or array-like
        Logit of the error probability at zero random effects.
    sd : float or array-like
        Standard deviation of the summed random effects (for independent
        participant and image effects ``sqrt(sd_p**2 + sd_i**2)``).

    Returns
    -------
    numpy.ndarray
        ``E[expit(logit_error + sd * Z)]`` with ``Z ~ N(0, 1)``, a proportion.

    Notes
    -----
    Computed by 150-node Gauss-Hermite quadrature (error below 1e-10 for
    SDs up to 3). In R:
    ``integrate(function(z) plogis(eta + sd * z) * dnorm(z), -Inf, Inf)``.
    """
    eta = np.asarray(logit_error, dtype=float)[..., None]
    scale = np.asarray(sd, dtype=float)[..., None]
    return (expit(eta + scale * _GH_NODES) * _GH_WEIGHTS).sum(axis=-1)


def logit_for_marginal(error_rate: float, sd: float) -> float:
    """Invert :func:`marginal_error_rate`: the logit giving a marginal rate."""
    from scipy.optimize import brentq

    target = float(error_rate)
    if not 0 < target < 1:
        raise ValueError(f"error_rate must lie strictly between 0 and 1: {target}")
    return brentq(
        lambda eta: float(marginal_error_rate(eta, sd)) - target,
        logit(target) - 10,
        logit(target) + 10,
        xtol=1e-12,
    )


def simulate_study(
    fake_error_rates: Sequence[float] = (0.15, 0.25, 0.35, 0.45),
    *,
    real_error_rate: float | None = 0.25,
    participants_per_model: int | Sequence[int] = 25,
    trials_per_participant: int = 200,
    real_fraction: float = 0.5,
    fake_images_per_model: int = 400,
    real_images: int = 1000,
    participant_sd: float = 0.45,
    image_sd: float = 0.9,
    dataset: str = "simulated",
    seed: int | np.random.Generator = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a between-design study: each participant judges one model.

    Parameters
    ----------
    fake_error_rates : sequence of float
        Per model, the population (marginal) rate at which its generated
        images are judged real. Models are named ``model_01``, ``model_02``,
        ...
    real_error_rate : float or None
        The population rate at which real images are judged generated. None
        uses each model's fake error rate, so that every trial follows
        ``logit P(error) = b_model + u_participant + v_image`` (the fit
        ``correct ~ model + (1|participant) + (1|image)`` is then exact).
    participants_per_model : int or sequence of int
        Participants per model: one number for all, or one per model (the
        published study had 25 to 27).
    trials_per_participant : int
        Trials per participant; every participant answers every trial.
    real_fraction : float
        Share of a participant's trials that show real images.
    fake_images_per_model, real_images : int
        Sizes of the image pools: each model has its own generated images;
        the real images are shared by all models. A participant sees no
        image twice.
    participant_sd, image_sd : float
        Standard deviations of the participant and image effects, logit
        scale.
    dataset : str
        Value of the ``dataset`` column.
    seed : int or numpy.random.Generator
        Random seed.

    Returns
    -------
    trials : pandas.DataFrame
        Main trials in the per-trial export schema (``study``, ``dataset``,
        ``session``, ``participant``, ``session_status``, ``model``,
        ``source``, ``stimulus``, ``is_real``, ``kind``, ``position``,
        ``response``, ``correct``, ``rt_ms`` (milliseconds, log-normal),
        ``timing_invalid``), every session completed.
    truth : pandas.DataFrame
        One row per model: ``model``, ``fake_error_rate``,
        ``real_error_rate``, ``error_rate`` (population marginal rates,
        proportions; ``error_rate`` weighs them by ``real_fraction``),
        ``fake_logit``, ``real_logit`` (logits at zero random effects).

    Raises
    ------
    ValueError
        If a rate is outside (0, 1) or a pool holds fewer images than a
        participant must see.
    """
    rng = np.random.default_rng(seed)
    n_real = round(trials_per_participant * real_fraction)
    n_fake = trials_per_participant - n_real
    if n_fake > fake_images_per_model or n_real > real_images:
        raise ValueError(
            f"each participant sees {n_fake} generated and {n_real} real images, "
            f"but the pools hold {fake_images_per_model} and {real_images}"
        )
    total_sd = float(np.hypot(participant_sd, image_sd))
    models = [f"model_{i + 1:02d}" for i in range(len(fake_error_rates))]
    if isinstance(participants_per_model, int):
        group_sizes = [participants_per_model] * len(models)
    else:
        group_sizes = [int(n) for n in participants_per_model]
    if len(group_sizes) != len(models) or min(group_sizes) < 1:
        raise ValueError(
            "participants_per_model must be a positive number or one positive "
            f"number per model ({len(models)})"
        )
    fake_logits = [logit_for_marginal(r, total_sd) for r in fake_error_rates]
    if real_error_rate is None:
        real_logits = list(fake_logits)
    else:
        real_logits = [logit_for_marginal(real_error_rate, total_sd)] * len(models)

    real_effects = rng.normal(0.0, image_sd, real_images)
    frames = []
    for m, model in enumerate(models):
        fake_effects = rng.normal(0.0, image_sd, fake_images_per_model)
        people = rng.normal(0.0, participant_sd, group_sizes[m])
        for p in range(group_sizes[m]):
            fake_ids = rng.choice(fake_images_per_model, n_fake, replace=False)
            real_ids = rng.choice(real_images, n_real, replace=False)
            eta = np.concatenate(
                [
                    fake_logits[m] + fake_effects[fake_ids],
                    real_logits[m] + real_effects[real_ids],
                ]
            )
            error = rng.random(eta.size) < expit(eta + people[p])
            order = rng.permutation(eta.size)
            is_real = np.repeat([False, True], [n_fake, n_real])[order]
            stimulus = np.concatenate(
                [
                    [f"{model}-{i:05d}" for i in fake_ids],
                    [f"real-{i:05d}" for i in real_ids],
                ]
            )[order]
            frames.append(
                pd.DataFrame(
                    {
                        "participant": f"{model}-p{p:03d}",
                        "model": model,
                        "stimulus": stimulus,
                        "is_real": is_real,
                        "error": error[order],
                    }
                )
            )
    trials = pd.concat(frames, ignore_index=True)
    trials = _as_export(trials, dataset, rng)
    truth = pd.DataFrame(
        {
            "model": models,
            "fake_error_rate": marginal_error_rate(fake_logits, total_sd),
            "real_error_rate": marginal_error_rate(real_logits, total_sd),
            "fake_logit": fake_logits,
            "real_logit": real_logits,
        }
    )
    truth["error_rate"] = (1 - real_fraction) * truth[
        "fake_error_rate"
    ] + real_fraction * truth["real_error_rate"]
    columns = ["model", "error_rate", "fake_error_rate", "real_error_rate"]
    return trials, truth[[*columns, "fake_logit", "real_logit"]]


def _as_export(trials: pd.DataFrame, dataset: str, rng: np.random.Generator):
    """Fill in the export schema's columns around the simulated responses."""
    is_real = trials["is_real"].to_numpy()
    error = trials.pop("error").to_numpy()
    said_real = np.where(error, ~is_real, is_real)
    trials.insert(0, "study", "simulated")
    trials.insert(1, "dataset", dataset)
    trials.insert(2, "session", "s-" + trials["participant"])
    trials.insert(4, "session_status", "completed")
    trials.insert(6, "source", np.where(is_real, "real", trials["model"]))
    trials["kind"] = "main"
    trials["position"] = trials.groupby("participant").cumcount()
    trials["response"] = np.where(said_real, "real", "generated")
    trials["correct"] = ~error
    # Response times: log-normal around 800 ms, a plausible online-study spread.
    trials["rt_ms"] = np.round(np.exp(rng.normal(np.log(800.0), 0.5, len(trials))))
    trials["timing_invalid"] = False
    return trials
