"""One table of default settings, shared by the Python API and ``analysis metrics``.

Option names are prefixed by the metric they tune (``kd_subsets``,
``prdc_k``), so the same name works as a keyword argument of
:func:`analysis.metrics.compute.compute_metrics` and, with dashes, as a
command-line option (``--kd-subsets``). The metric defaults follow the
dgm-eval library used for the published leaderboard (Stein et al. 2023), so
values computed here are comparable with it.
"""

from __future__ import annotations

from typing import Any

#: Metric settings. Each key is also a ``--option`` of ``analysis metrics``.
METRIC_DEFAULTS: dict[str, Any] = {
    # FD_inf: number of subset sizes, spread evenly (Chong & Forsyth 2020)
    "fd_inf_points": 15,
    # KD: number of subsets and subset size (Bińkowski et al. 2018)
    "kd_subsets": 100,
    "kd_subset_size": 1000,
    "kd_degree": 3,
    "kd_coef0": 1.0,
    # IS: number of splits of the generated set (Salimans et al. 2016)
    "is_splits": 10,
    # precision/recall/density/coverage: neighbourhood size
    "prdc_k": 5,
    # vendi: order q of the entropy (1 = Shannon)
    "vendi_q": 1.0,
    # C_T: k-means cells, PCA dimensions, and generated samples a cell needs
    "ct_cells": 3,
    "ct_pca_dims": 64,
    "ct_min_generated": 20,
    # FLS: largest set size used, optimisation steps of the bandwidths
    "fls_max_samples": 10000,
    "fls_steps": 100,
}

#: One line of help per metric setting (shown by ``analysis metrics --help``).
METRIC_HELP: dict[str, str] = {
    "fd_inf_points": "FD_inf: number of generated-subset sizes in the fit.",
    "kd_subsets": "KD: number of random subsets.",
    "kd_subset_size": "KD: images per subset (capped at the smaller set).",
    "kd_degree": "KD: degree of the polynomial kernel.",
    "kd_coef0": "KD: constant term of the polynomial kernel.",
    "is_splits": "IS: number of splits of the generated set.",
    "prdc_k": "precision/recall/density/coverage: neighbourhood size k.",
    "vendi_q": "vendi: order q of the entropy (1 = Shannon).",
    "ct_cells": "C_T: number of k-means cells.",
    "ct_pca_dims": "C_T: PCA dimensions the features are reduced to.",
    "ct_min_generated": "C_T: a cell needs more than this many generated images.",
    "fls_max_samples": "FLS: largest number of images used per set.",
    "fls_steps": "FLS: optimisation steps for the kernel bandwidths.",
}

#: Feature-extraction settings.
EXTRACTION_DEFAULTS: dict[str, Any] = {
    "batch_size": 64,
    # decoding processes; 0 decodes in the main process
    "workers": 2,
    # None chooses CUDA when available, else the CPU
    "device": None,
    "cache_dir": "~/.cache/realism-study/features",
}

#: Seed of every random choice (subsets, k-means, random-init weights).
SEED = 13579

#: Metrics computed when ``--metric`` is not given. ``IS`` is added for encoders
#: with class logits, ``C_T`` and ``FLS`` when a test set is given.
DEFAULT_METRICS: tuple[str, ...] = (
    "FD",
    "FD_inf",
    "KD",
    "precision",
    "recall",
    "density",
    "coverage",
    "vendi",
    "AuthPct",
)

#: Encoders used when ``--encoder`` is not given (the encoder that agreed best
#: with human judgement in Stein et al. 2023).
DEFAULT_ENCODERS: tuple[str, ...] = ("dinov2_vitl14",)


def metric_options(**overrides: Any) -> dict[str, Any]:
    """Return the metric settings with some of them replaced.

    Parameters
    ----------
    **overrides
        Settings to change, by their names in :data:`METRIC_DEFAULTS`.

    Returns
    -------
    dict
        A new dict with every key of :data:`METRIC_DEFAULTS`.

    Raises
    ------
    ValueError
        For a name that is not a metric setting (the known ones are listed).
    """
    unknown = sorted(set(overrides) - set(METRIC_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown metric setting(s) {unknown}; known: {', '.join(METRIC_DEFAULTS)}"
        )
    return {**METRIC_DEFAULTS, **overrides}
