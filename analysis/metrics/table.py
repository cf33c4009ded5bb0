"""The metric table: the one file format that metric results are written in.

Every metric computed by ``analysis metrics`` (or by the Python API in
:mod:`analysis.metrics.compute`) ends up as rows of the *tidy metric table*,
which ``analysis correlate`` reads.

Tidy form (``metrics.csv``)
---------------------------
One row per (dataset, model, encoder, metric), with exactly these columns, in
this order:

============  ======  ========================================================
column        type    meaning
============  ======  ========================================================
dataset       str     image domain, e.g. ``cifar10`` or ``imagenet256``
model         str     generative model (the generated folder's name unless
                      given); never ``real``
encoder       str     registry name of the encoder, e.g. ``dinov2_vitl14``
                      (see :mod:`analysis.metrics.registry`)
metric        str     one of :data:`METRIC_NAMES`
value         float   the metric's value (units below); never empty or NaN
n_real        int     real (reference) images the metric used; 0 for metrics
                      that use none (``IS``, ``vendi``, ``vendi_per_class``);
                      train plus test images for ``C_T`` and ``FLS``
n_generated   int     generated images the metric used
weights       str     what the encoder's weights were: ``sha256:<hex>`` of the
                      weights file, ``hf:<repo id>@<revision>`` for a local
                      Hugging Face cache (with the file digest after ``#``),
                      the literal ``random-init`` for a randomly initialised
                      encoder (test use only; such values mean nothing), and
                      ``none`` for the ``pixels`` encoder, which has no
                      weights. ``unknown`` for feature files without metadata.
============  ======  ========================================================

Metric names (:data:`METRIC_NAMES`; they match the column names of the
published DINOv2 leaderboard of Stein et al. 2023 where a metric exists there):

==================  ==========================================================
``FD``              Fréchet distance, squared feature units (lower = closer)
``FD_inf``          FD extrapolated to infinitely many generated samples
``KD``              kernel distance (KID): unbiased MMD² with the cubic
                    polynomial kernel, mean over subsets, raw (not ×1e3)
``IS``              Inception Score (needs an encoder with class logits)
``precision``       fraction of generated samples inside the real manifold
``recall``          fraction of real samples inside the generated manifold
``density``         mean count of real neighbourhoods per generated sample / k
``coverage``        fraction of real neighbourhoods holding a generated sample
``vendi``           Vendi score of the generated set (effective number of
                    distinct samples)
``vendi_per_class`` mean over classes of the per-class Vendi score
``AuthPct``         percentage of authentic generated samples (0-100)
``C_T``             data-copying test statistic (a z-score; below 0 suggests
                    copying of the training set)
``FLS``             feature likelihood score (100 = as good as held-out data)
==================  ==========================================================

Wide form (``metrics_wide.csv``)
--------------------------------
One row per (dataset, model, encoder) with the columns ``dataset``, ``model``,
``encoder``, ``weights``, ``n_real``, ``n_generated`` (the largest counts over
that row's metrics, i.e. the sizes of the input sets) and then one column per
metric present, in :data:`METRIC_NAMES` order. Empty cells mean the metric was
not computed for that row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "encoder",
    "metric",
    "value",
    "n_real",
    "n_generated",
    "weights",
)

METRIC_NAMES: tuple[str, ...] = (
    "FD",
    "FD_inf",
    "KD",
    "IS",
    "precision",
    "recall",
    "density",
    "coverage",
    "vendi",
    "vendi_per_class",
    "AuthPct",
    "C_T",
    "FLS",
)

#: ``weights`` value of a randomly initialised encoder.
RANDOM_INIT = "random-init"
#: ``weights`` value of an encoder without weights (``pixels``).
NO_WEIGHTS = "none"
#: ``weights`` value of a feature file that does not say.
UNKNOWN_WEIGHTS = "unknown"

TIDY_FILE = "metrics.csv"
WIDE_FILE = "metrics_wide.csv"

_KEY_COLUMNS = ["dataset", "model", "encoder"]


@dataclass(frozen=True)
class MetricRow:
    """One row of the tidy metric table (see the module docstring)."""

    dataset: str
    model: str
    encoder: str
    metric: str
    value: float
    n_real: int
    n_generated: int
    weights: str


def rows_to_frame(rows: Iterable[MetricRow | Mapping[str, object]]) -> pd.DataFrame:
    """Build a validated tidy metric table from rows.

    Parameters
    ----------
    rows : iterable of MetricRow or mapping
        Rows with the fields of :data:`TABLE_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS` in order; see the module docstring for
        the meaning and unit of each.

    Raises
    ------
    ValueError
        If a row lacks a column, names an unknown metric, has a non-finite
        value, a negative count, or duplicates another row's key.
    """
    records = [asdict(r) if isinstance(r, MetricRow) else dict(r) for r in rows]
    frame = pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))
    return validate_metric_table(frame)


def validate_metric_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Check that a DataFrame is a well-formed tidy metric table.

    Parameters
    ----------
    frame : pandas.DataFrame
        A candidate tidy metric table.

    Returns
    -------
    pandas.DataFrame
        A copy with the columns of :data:`TABLE_COLUMNS` in order and typed:
        strings for ``dataset``, ``model``, ``encoder``, ``metric`` and
        ``weights``, float for ``value``, int for ``n_real`` and
        ``n_generated``.

    Raises
    ------
    ValueError
        Naming the first problem found: wrong columns, empty names, an
        unknown metric (the known ones are listed), a non-finite value,
        negative counts, ``real`` as a model, or duplicate keys.
    """
    columns = list(frame.columns)
    if columns != list(TABLE_COLUMNS):
        raise ValueError(
            f"a metric table needs exactly the columns {list(TABLE_COLUMNS)}; "
            f"got {columns}"
        )

    out = frame.copy()
    for column in ("dataset", "model", "encoder", "metric", "weights"):
        if out[column].isna().any():
            raise ValueError(f"metric table column {column!r} has empty cells")
        out[column] = out[column].astype(str)
        if (out[column].str.strip() == "").any():
            raise ValueError(f"metric table column {column!r} has empty names")

    unknown = sorted(set(out["metric"]) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(
            f"unknown metric name(s) {unknown}; known: {', '.join(METRIC_NAMES)}"
        )
    if (out["model"].str.casefold() == "real").any():
        raise ValueError("'real' is not a model; name the generated sets' models")

    out["value"] = pd.to_numeric(out["value"], errors="raise").astype(float)
    if not np.isfinite(out["value"].to_numpy()).all():
        raise ValueError("metric table values must be finite (no NaN or inf)")
    for column in ("n_real", "n_generated"):
        counts = pd.to_numeric(out[column], errors="raise")
        if (counts < 0).any() or (counts != np.floor(counts)).any():
            raise ValueError(f"{column} must be a non-negative whole number")
        out[column] = counts.astype("int64")

    duplicated = out.duplicated(subset=[*_KEY_COLUMNS, "metric"], keep=False)
    if duplicated.any():
        first = out.loc[duplicated, [*_KEY_COLUMNS, "metric"]].iloc[0].tolist()
        raise ValueError(f"metric table has duplicate rows for {first}")
    return out.reset_index(drop=True)


def to_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """Pivot a tidy metric table to one row per dataset, model and encoder.

    Parameters
    ----------
    tidy : pandas.DataFrame
        A tidy metric table (see :func:`validate_metric_table`).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``model``, ``encoder``, ``weights``, ``n_real``
        and ``n_generated`` (largest counts over the row's metrics), then one
        float column per metric present, in :data:`METRIC_NAMES` order.

    Raises
    ------
    ValueError
        If one (dataset, model, encoder) has rows with different ``weights``.
    """
    tidy = validate_metric_table(tidy)
    weights = tidy.groupby(_KEY_COLUMNS, sort=False)["weights"].nunique()
    if (weights > 1).any():
        key = list(weights[weights > 1].index[0])
        raise ValueError(f"rows for {key} disagree about the encoder weights")

    info = tidy.groupby(_KEY_COLUMNS, sort=False).agg(
        weights=("weights", "first"),
        n_real=("n_real", "max"),
        n_generated=("n_generated", "max"),
    )
    values = tidy.pivot(index=_KEY_COLUMNS, columns="metric", values="value")
    ordered = [m for m in METRIC_NAMES if m in values.columns]
    wide = info.join(values[ordered]).reset_index()
    wide.columns.name = None
    return wide


def write_metric_table(tidy: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write the tidy table and its wide form as CSV files.

    Parameters
    ----------
    tidy : pandas.DataFrame
        A tidy metric table.
    out_dir : str or Path
        Folder to write into (created if missing).

    Returns
    -------
    tuple of Path
        Paths of ``metrics.csv`` (tidy) and ``metrics_wide.csv`` (wide).
    """
    tidy = validate_metric_table(tidy)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tidy_path, wide_path = out / TIDY_FILE, out / WIDE_FILE
    # repr-exact floats so a read-back table equals the computed one
    tidy.to_csv(tidy_path, index=False, float_format="%.17g")
    to_wide(tidy).to_csv(wide_path, index=False, float_format="%.17g")
    return tidy_path, wide_path


def read_metric_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a tidy metric table written by :func:`write_metric_table`.

    Parameters
    ----------
    path : str or Path
        A ``metrics.csv`` file.

    Returns
    -------
    pandas.DataFrame
        The validated tidy table (columns :data:`TABLE_COLUMNS`).
    """
    frame = pd.read_csv(
        path,
        dtype={
            "dataset": str,
            "model": str,
            "encoder": str,
            "metric": str,
            "weights": str,
        },
        keep_default_na=False,
    )
    return validate_metric_table(frame)
