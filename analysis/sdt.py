"""Signal detection per participant: sensitivity (d') and response bias (c).

Does a participant tell generated from real images apart, and do they lean
towards answering "real"? Error rates mix the two; signal detection theory
separates them. Here the signal is a generated image: a hit is a generated
image judged "generated", a false alarm a real image judged "generated".

- ``d_prime = z(H) - z(F)``: sensitivity; 0 means the participant cannot tell
  the model's images from real ones.
- ``criterion = -(z(H) + z(F)) / 2``: bias; positive means a lean towards
  answering "real" (being fooled more often than raising false alarms).

with ``z`` the standard normal quantile function, ``H`` the hit rate and
``F`` the false-alarm rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

CORRECTIONS = ("loglinear", "none")


def dprime(
    hits: np.ndarray | float,
    n_signal: np.ndarray | float,
    false_alarms: np.ndarray | float,
    n_noise: np.ndarray | float,
    *,
    correction: str = "loglinear",
) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity d' and criterion c from hit and false-alarm counts.

    Parameters
    ----------
    hits : int or array
        Generated images judged "generated".
    n_signal : int or array
        Generated images shown.
    false_alarms : int or array
        Real images judged "generated".
    n_noise : int or array
        Real images shown.
    correction : {'loglinear', 'none'}
        ``'loglinear'`` adds 0.5 to the hits and false alarms and 1 to both
        counts, which keeps rates of 0 and 1 finite (Hautus 1995). ``'none'``
        uses the raw rates and gives infinite values at 0 or 1.

    Returns
    -------
    d_prime, criterion : numpy.ndarray
        Sensitivity and criterion, in standard-normal units (z scores).

    Raises
    ------
    ValueError
        For an unknown correction, a count below 0 or above its total, or a
        total of 0.

    Notes
    -----
    ``H = (hits + 0.5) / (n_signal + 1)``, ``F = (false_alarms + 0.5) /
    (n_noise + 1)``, ``d' = z(H) - z(F)``, ``c = -(z(H) + z(F)) / 2``.
    In R: ``H <- (h + .5) / (ns + 1); F <- (fa + .5) / (nn + 1);
    qnorm(H) - qnorm(F); -(qnorm(H) + qnorm(F)) / 2``.

    References
    ----------
    Hautus, M. J. (1995). Corrections for extreme proportions and their
    biasing effects on estimated values of d'. Behavior Research Methods,
    Instruments, & Computers, 27(1), 46-51.

    Macmillan, N. A. & Creelman, C. D. (2005). Detection Theory: A User's
    Guide (2nd ed.), ch. 1-2. Erlbaum.

    Examples
    --------
    >>> d, c = dprime(91, 100, 20, 100)
    >>> round(float(d), 4), round(float(c), 4)
    (2.1472, -0.2426)
    """
    if correction not in CORRECTIONS:
        raise ValueError(
            f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}"
        )
    hits, n_signal, false_alarms, n_noise = (
        np.asarray(a, dtype=float) for a in (hits, n_signal, false_alarms, n_noise)
    )
    if np.any(n_signal <= 0) or np.any(n_noise <= 0):
        raise ValueError("n_signal and n_noise must be positive counts")
    if np.any((hits < 0) | (hits > n_signal)) or np.any(
        (false_alarms < 0) | (false_alarms > n_noise)
    ):
        raise ValueError("hits and false alarms must lie between 0 and their totals")
    if correction == "loglinear":
        hit_rate = (hits + 0.5) / (n_signal + 1)
        fa_rate = (false_alarms + 0.5) / (n_noise + 1)
    else:
        hit_rate = hits / n_signal
        fa_rate = false_alarms / n_noise
    z_hit, z_fa = norm.ppf(hit_rate), norm.ppf(fa_rate)
    # Without correction, rates of 0 and 1 give infinite z and a NaN criterion.
    with np.errstate(invalid="ignore"):
        return z_hit - z_fa, -(z_hit + z_fa) / 2


def participant_sdt(
    participants: pd.DataFrame, *, correction: str = "loglinear"
) -> pd.DataFrame:
    """Add per-participant signal detection columns to the participant table.

    Parameters
    ----------
    participants : pandas.DataFrame
        The per-participant table (:func:`analysis.readers.read_participants`).
    correction : {'loglinear', 'none'}
        See :func:`dprime`.

    Returns
    -------
    pandas.DataFrame
        A copy with four more columns:

        - ``hits`` (int): generated images judged "generated",
          ``(1 - fake_error_rate) · n_fake_trials``.
        - ``false_alarms`` (int): real images judged "generated",
          ``real_error_rate · n_real_trials``.
        - ``d_prime`` (float, z units): sensitivity.
        - ``criterion`` (float, z units): bias, positive towards "real".

        Participants without generated or without real trials get NaN.
    """
    table = participants.copy()
    n_fake = table["n_fake_trials"].to_numpy(dtype=float)
    n_real = table["n_real_trials"].to_numpy(dtype=float)
    # Rates are stored as floats (0.08999999999999997); the counts are whole.
    hits = np.round((1 - table["fake_error_rate"].to_numpy(dtype=float)) * n_fake)
    fas = np.round(table["real_error_rate"].to_numpy(dtype=float) * n_real)
    ok = (n_fake > 0) & (n_real > 0)
    d = np.full(len(table), np.nan)
    c = np.full(len(table), np.nan)
    if ok.any():
        d[ok], c[ok] = dprime(
            hits[ok], n_fake[ok], fas[ok], n_real[ok], correction=correction
        )
    table["hits"] = pd.array(np.where(ok, hits, np.nan), dtype="Int64")
    table["false_alarms"] = pd.array(np.where(ok, fas, np.nan), dtype="Int64")
    table["d_prime"] = d
    table["criterion"] = c
    return table


def model_sdt(
    participants: pd.DataFrame, *, correction: str = "loglinear"
) -> pd.DataFrame:
    """Summarise per-participant d' and criterion per model.

    Parameters
    ----------
    participants : pandas.DataFrame
        The per-participant table, with or without the columns of
        :func:`participant_sdt` (they are computed when absent).
    correction : {'loglinear', 'none'}
        See :func:`dprime`.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model)``: ``d_prime`` and ``criterion`` (means
        over participants, z units) and ``d_prime_sem``, ``criterion_sem``
        (standard deviation over participants, ``ddof=1``, over the square
        root of their number; NaN for one participant).

    Notes
    -----
    In R: ``aggregate(cbind(d, c) ~ model, d, function(x) c(mean(x),
    sd(x) / sqrt(length(x))))``.
    """
    if "d_prime" not in participants.columns:
        participants = participant_sdt(participants, correction=correction)
    grouped = participants.groupby(["dataset", "model"], sort=True, observed=True)
    table = pd.DataFrame(
        {
            "d_prime": grouped["d_prime"].mean(),
            "d_prime_sem": grouped["d_prime"].std(ddof=1)
            / np.sqrt(grouped["d_prime"].count()),
            "criterion": grouped["criterion"].mean(),
            "criterion_sem": grouped["criterion"].std(ddof=1)
            / np.sqrt(grouped["criterion"].count()),
        }
    )
    return table.reset_index()
