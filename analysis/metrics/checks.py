"""Input checks shared by the metric functions.

Every metric validates its feature arrays here, so bad input fails the same
way everywhere: a ``ValueError`` that names the metric, the set and what is
allowed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_features(
    x: ArrayLike, *, metric: str, role: str, min_samples: int
) -> NDArray[np.float64]:
    """Return ``x`` as a finite float64 array of shape (samples, dimensions).

    Parameters
    ----------
    x : array_like
        Features, one row per image.
    metric : str
        Name of the metric asking (used in error messages).
    role : str
        Which set this is (``real``, ``generated``, ``train``, ``test``).
    min_samples : int
        Fewest rows the metric needs.

    Returns
    -------
    numpy.ndarray
        The features as float64, shape (n, d).

    Raises
    ------
    ValueError
        If ``x`` is not two-dimensional, has no columns, has fewer than
        ``min_samples`` rows, or holds NaN or infinite values.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(
            f"{metric}: {role} features must be a 2-D array (images x "
            f"dimensions); got shape {arr.shape}"
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{metric} needs at least {min_samples} {role} samples; got {arr.shape[0]}"
        )
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(
            f"{metric}: {role} features contain NaN or infinite values "
            f"({bad} of {arr.shape[0]} rows)"
        )
    return arr


def same_dims(metric: str, **sets: NDArray[np.float64]) -> None:
    """Check that feature sets have the same number of dimensions.

    Parameters
    ----------
    metric : str
        Name of the metric asking.
    **sets : numpy.ndarray
        Feature arrays by role.

    Raises
    ------
    ValueError
        If the arrays' second dimensions differ (all are named).
    """
    dims = {role: arr.shape[1] for role, arr in sets.items()}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{role} {d}" for role, d in dims.items())
        raise ValueError(f"{metric}: feature dimensions differ ({listed})")


def positive_int(value: int, *, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is a whole number of at least ``minimum``.

    Raises
    ------
    ValueError
        Otherwise, naming the setting and the minimum.
    """
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value}")
    return int(value)
