"""Compute chosen metrics for several models against one real set.

This is the Python API behind ``analysis metrics``: feature arrays (or
:class:`~analysis.metrics.featureset.FeatureSet` objects) in, a tidy metric
table out (see :mod:`analysis.metrics.table`). Settings come from
:data:`analysis.metrics.defaults.METRIC_DEFAULTS`, the same table the command
line uses.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tqdm.auto import tqdm

from analysis.metrics.defaults import DEFAULT_METRICS, SEED, metric_options
from analysis.metrics.featureset import FeatureSet
from analysis.metrics.metric_authpct import authpct
from analysis.metrics.metric_ct import c_t
from analysis.metrics.metric_fd import (
    FD_INF_MIN_GENERATED,
    FD_MIN_SAMPLES,
    FrechetReference,
    fd_infinity,
)
from analysis.metrics.metric_fls import FLS_MIN_SET, fls
from analysis.metrics.metric_is import inception_score
from analysis.metrics.metric_kd import KD_MIN_SAMPLES, kernel_distance
from analysis.metrics.metric_prdc import precision_recall_density_coverage
from analysis.metrics.metric_vendi import vendi_per_class, vendi_score
from analysis.metrics.table import MetricRow, rows_to_frame

Options = Mapping[str, Any]
_PRDC = ("precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric needs: which sets, and how many samples in each.

    ``min_real``, ``min_generated`` and ``min_test`` map the metric settings
    to the fewest samples needed (0: the set is not used).
    """

    name: str
    min_real: Callable[[Options], int]
    min_generated: Callable[[Options], int]
    min_test: Callable[[Options], int] = lambda o: 0
    needs_logits: bool = False
    needs_labels: bool = False


def _const(n: int) -> Callable[[Options], int]:
    return lambda o: n


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("FD", _const(FD_MIN_SAMPLES), _const(FD_MIN_SAMPLES)),
        MetricInfo("FD_inf", _const(FD_MIN_SAMPLES), _const(FD_INF_MIN_GENERATED)),
        MetricInfo("KD", _const(KD_MIN_SAMPLES), _const(KD_MIN_SAMPLES)),
        MetricInfo("IS", _const(0), lambda o: o["is_splits"], needs_logits=True),
        *(
            MetricInfo(name, lambda o: o["prdc_k"] + 1, lambda o: o["prdc_k"] + 1)
            for name in _PRDC
        ),
        MetricInfo("vendi", _const(0), _const(1)),
        MetricInfo("vendi_per_class", _const(0), _const(1), needs_labels=True),
        MetricInfo("AuthPct", _const(2), _const(1)),
        MetricInfo(
            "C_T",
            lambda o: o["ct_cells"],
            lambda o: o["ct_min_generated"] + 1,
            lambda o: o["ct_cells"],
        ),
        MetricInfo(
            "FLS", _const(2 * FLS_MIN_SET), _const(FLS_MIN_SET), _const(FLS_MIN_SET)
        ),
    )
}


def check_metric_names(names: Sequence[str]) -> list[str]:
    """Return the metric names in table order, refusing unknown ones.

    Raises
    ------
    ValueError
        Naming the unknown metrics and listing the known ones.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}"
        )
    return [n for n in METRICS if n in set(names)]


def default_metrics(*, has_logits: bool, has_test: bool) -> list[str]:
    """The default metric set: :data:`DEFAULT_METRICS`, plus ``IS`` for encoders
    with class logits and ``C_T`` and ``FLS`` when a test set is given."""
    names = list(DEFAULT_METRICS)
    if has_logits:
        names.append("IS")
    if has_test:
        names += ["C_T", "FLS"]
    return check_metric_names(names)


def _as_set(x: FeatureSet | NDArray[np.floating]) -> FeatureSet:
    if isinstance(x, FeatureSet):
        return x
    arr = np.asarray(x)
    return FeatureSet(arr, [str(i) for i in range(len(arr))])


def _too_few(
    info: MetricInfo,
    options: Options,
    model: str,
    counts: dict[str, int],
) -> str:
    """Why a metric cannot run on these set sizes ('' when it can)."""
    needs = {
        "real": info.min_real(options),
        "generated": info.min_generated(options),
        "test": info.min_test(options),
    }
    for role, minimum in needs.items():
        if minimum and counts[role] < minimum:
            where = f"model {model!r}" if role == "generated" else f"the {role} set"
            return (
                f"{info.name} needs at least {minimum} {role} samples; "
                f"{where} has {counts[role]}"
            )
    return ""


def compute_metrics(
    real: FeatureSet | NDArray[np.floating],
    generated: Mapping[str, FeatureSet | NDArray[np.floating]],
    *,
    metrics: Sequence[str] | None = None,
    dataset: str,
    encoder: str,
    weights: str,
    test: FeatureSet | NDArray[np.floating] | None = None,
    seed: int = SEED,
    on_too_few: str = "error",
    progress: bool = False,
    **settings: Any,
) -> pd.DataFrame:
    """Metrics of several generated sets against one real set, as a tidy table.

    Parameters
    ----------
    real : FeatureSet or array_like, shape (n, d)
        Real (reference, training-set) features.
    generated : mapping of str to FeatureSet or array_like
        Model name to its generated features (m, d). Class logits (for
        ``IS``) and labels (for ``vendi_per_class``) come from FeatureSets.
    metrics : sequence of str, optional
        Names from :data:`~analysis.metrics.table.METRIC_NAMES`; default
        :func:`default_metrics`.
    dataset, encoder, weights : str
        Written into every row (see :mod:`analysis.metrics.table`).
    test : FeatureSet or array_like, optional
        Held-out real features; needed by ``C_T`` and ``FLS``.
    seed : int
        Seed of every random choice (subsets, k-means starts).
    on_too_few : {"error", "skip"}
        What to do when a set is smaller than a metric needs: raise, or leave
        that row out with a warning.
    progress : bool
        Show a progress bar over models.
    **settings
        Metric settings from :data:`~analysis.metrics.defaults.METRIC_DEFAULTS`
        (``kd_subsets=50``, ``prdc_k=3``, ...).

    Returns
    -------
    pandas.DataFrame
        The tidy metric table: ``dataset``, ``model``, ``encoder``, ``metric``,
        ``value`` (the metric's own unit), ``n_real``, ``n_generated`` (image
        counts) and ``weights``.

    Raises
    ------
    ValueError
        For unknown metrics or settings, a missing test set, logits or
        labels, too few samples (with ``on_too_few="error"``), mismatched
        feature dimensions or NaN features.
    """
    options = metric_options(**settings)
    if on_too_few not in ("error", "skip"):
        raise ValueError(f"on_too_few must be 'error' or 'skip'; got {on_too_few!r}")
    real_set = _as_set(real)
    test_set = _as_set(test) if test is not None else None
    gen_sets = {name: _as_set(g) for name, g in generated.items()}
    if not gen_sets:
        raise ValueError("no generated sets given")
    if metrics is None:
        has_logits = all(g.logits is not None for g in gen_sets.values())
        names = default_metrics(has_logits=has_logits, has_test=test_set is not None)
    else:
        names = check_metric_names(metrics)
    if test_set is None and {"C_T", "FLS"} & set(names):
        raise ValueError("C_T and FLS need a held-out test set of real images")

    runner = _Runner(real_set, test_set, options, seed)
    rows = []
    models = tqdm(gen_sets.items(), desc=f"metrics {encoder}", disable=not progress)
    for model, gen in models:
        counts = {
            "real": len(real_set),
            "generated": len(gen),
            "test": len(test_set) if test_set is not None else 0,
        }
        for name in names:
            problem = _too_few(METRICS[name], options, model, counts)
            if problem and on_too_few == "error":
                raise ValueError(problem)
            if problem:
                warnings.warn(f"left out: {problem}", stacklevel=2)
                continue
            value, n_real = runner.value(name, model, gen)
            rows.append(
                MetricRow(
                    dataset, model, encoder, name, value, n_real, len(gen), weights
                )
            )
    return rows_to_frame(rows)


class _Runner:
    """Computes metric values, sharing work between metrics and models."""

    def __init__(self, real: FeatureSet, test: FeatureSet | None, options, seed):
        self.real, self.test, self.options, self.seed = real, test, options, seed
        self._reference: FrechetReference | None = None
        self._prdc: dict[str, dict[str, float]] = {}

    @property
    def reference(self) -> FrechetReference:
        # the real set's square-root covariance is computed once for all models
        if self._reference is None:
            self._reference = FrechetReference.from_features(self.real.features)
        return self._reference

    def value(self, name: str, model: str, gen: FeatureSet) -> tuple[float, int]:
        """The metric's value and the number of real images it used."""
        o, real, y = self.options, self.real.features, gen.features
        n_real = len(self.real)
        if name == "FD":
            _check_dims("FD", real, y)
            return self.reference.distance_to_features(y), n_real
        if name == "FD_inf":
            _check_dims("FD_inf", real, y)
            value = fd_infinity(
                self.reference, y, points=o["fd_inf_points"], seed=self.seed
            )
            return value, n_real
        if name == "KD":
            value, _ = kernel_distance(
                real,
                y,
                subsets=o["kd_subsets"],
                subset_size=o["kd_subset_size"],
                degree=o["kd_degree"],
                coef0=o["kd_coef0"],
                seed=self.seed,
            )
            return value, n_real
        if name == "IS":
            if gen.logits is None:
                raise ValueError(
                    f"IS needs class logits; the features of model {model!r} have "
                    "none (use an encoder with logits, e.g. inception_v3_fid)"
                )
            value, _ = inception_score(
                gen.logits, splits=o["is_splits"], seed=self.seed
            )
            return value, 0
        if name in _PRDC:
            if model not in self._prdc:
                self._prdc[model] = precision_recall_density_coverage(
                    real, y, k=o["prdc_k"]
                )
            return self._prdc[model][name], n_real
        if name == "vendi":
            return vendi_score(y, q=o["vendi_q"]), 0
        if name == "vendi_per_class":
            if gen.labels is None:
                raise ValueError(
                    f"vendi_per_class needs class labels for model {model!r}"
                )
            per_class = vendi_per_class(y, gen.labels, q=o["vendi_q"])
            return float(np.mean(list(per_class.values()))), 0
        if name == "AuthPct":
            return authpct(real, y), n_real
        assert self.test is not None  # checked by compute_metrics
        n_both = n_real + len(self.test)
        if name == "C_T":
            value = c_t(
                real,
                self.test.features,
                y,
                cells=o["ct_cells"],
                pca_dims=o["ct_pca_dims"],
                min_generated=o["ct_min_generated"],
                seed=self.seed,
            )
            return value, n_both
        value = fls(
            real,
            self.test.features,
            y,
            max_samples=o["fls_max_samples"],
            steps=o["fls_steps"],
            seed=self.seed,
        )
        return value, n_both


def _check_dims(metric: str, real: np.ndarray, generated: np.ndarray) -> None:
    if real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"{metric}: feature dimensions differ (real {real.shape[1]}, "
            f"generated {generated.shape[1]})"
        )
    if not np.isfinite(generated).all():
        raise ValueError(f"{metric}: generated features contain NaN or infinite values")
