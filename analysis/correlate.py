"""Which metric agrees with people? Human scores set against metric tables.

Inputs
------
Human data (:func:`read_human`) is either ``human_scores.csv`` from
``analysis fit`` (one row per dataset and model) or per-participant data (the
published per-participant CSVs, this project's per-trial exports or its
per-participant tables, read by :func:`analysis.readers.read_participants`).
Metric tables (:func:`read_metric_table`) are either the tidy table of
``analysis metrics`` (``dataset, model, encoder, metric, value, ...``) or a
wide table with one column per metric, such as the published DINOv2
leaderboard.

Sign convention
---------------
Every metric has a direction: ``lower`` when a lower value means a better
model by the metric's own definition (FD, FD_inf, KD, ...), ``higher`` when a
higher value does (precision, recall, density, coverage, AuthPct, FLS, ...),
or ``none`` when neither end is better (the data-copying statistic C_T: far
below 0 means copying, far above 0 underfitting). Every human score has one
too: a higher error rate means that people told the model's images from real
ones less often, i.e. that the model is more realistic.

``coefficient`` is the raw correlation between the human score and the metric
value. ``sign`` is the product of the two directions (+1 or -1) and
``agreement = sign * coefficient``: positive means that models the metric
calls better are the ones people found more realistic, whatever the metric's
orientation. A lower FD with a higher human error rate gives a negative
coefficient and a positive agreement. Metrics with direction ``none`` get no
sign and no agreement.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from analysis.bootstrap import (
    Participants,
    bh_adjust,
    bootstrap_block,
    bootstrap_p_value,
    check_methods,
    dataset_rng,
    percentile_interval,
    resample_blocks,
)
from analysis.names import Aliases, match_names, normalize_name

DIRECTIONS = ("higher", "lower", "none")

# Direction of each known metric, keyed by normalize_name(metric): "higher"
# or "lower" is better by the metric's own definition (sources in comments).
METRIC_DIRECTIONS: dict[str, str] = {
    # Distances between real and generated feature distributions: 0 is best.
    "fd": "lower",  # Heusel et al. 2017 (FID)
    "fid": "lower",
    "fdinf": "lower",  # Chong & Forsyth 2020, FD extrapolated to infinite n
    "fdinfinity": "lower",
    "fidinf": "lower",
    "kd": "lower",  # Binkowski et al. 2018 (KID), an unbiased MMD^2
    "kid": "lower",
    "mmd": "lower",
    "sfid": "lower",  # Nash et al. 2021
    "asw": "lower",  # approximate sliced Wasserstein distance
    "swd": "lower",
    "energy": "lower",  # energy distance
    # Fidelity, diversity and generalisation scores: larger is better.
    "precision": "higher",  # Kynkaanniemi et al. 2019
    "recall": "higher",
    "density": "higher",  # Naeem et al. 2020
    "coverage": "higher",
    "is": "higher",  # Salimans et al. 2016
    "inceptionscore": "higher",
    "vendi": "higher",  # Friedman & Dieng 2023: effective number of modes
    "vendiscore": "higher",
    "vendiperclass": "higher",
    "authpct": "higher",  # Alaa et al. 2022: per cent of authentic samples
    "authenticity": "higher",
    # FLS = 100 * exp(-2 (NLL_gen - NLL_baseline) / d) (Jiralerspong et al.
    # 2023); the real test set scores highest in the published leaderboard.
    "fls": "higher",
    # Per cent of generated kernels that fit training better than test, minus
    # 50: above 0 means memorisation of the training set.
    "flspog": "lower",
    # C_T (Meehan et al. 2020): a z-score, << 0 data copying, >> 0
    # underfitting; 0 is ideal, so neither end is better.
    "ct": "none",
    "ctmod": "none",
    "ctmem": "none",
    "ctmode": "none",
}

# Direction of each human score: "higher" when a higher value means a more
# realistic model (people were fooled more, or told real from generated less).
SCORE_DIRECTIONS: dict[str, str] = {
    "error_rate": "higher",
    "fake_error_rate": "higher",
    "real_error_rate": "higher",
    "answered_real_rate": "higher",
    "d_prime": "lower",
}

# Rows of a metric table that score real data against itself, not a model.
REFERENCE_ROWS = frozenset(
    normalize_name(n)
    for n in (
        "Test Set",
        "Validation Set",
        "Train Set",
        "Training Set",
        "real",
        "real data",
        "reference",
    )
)

TIDY_COLUMNS = ("dataset", "model", "metric", "value")
WIDE_ID_COLUMNS = ("dataset", "model", "encoder", "weights")
# Columns of ``analysis metrics``' wide table that are sample sizes, not metrics.
WIDE_COUNT_COLUMNS = ("n_real", "n_generated")
SUMMARY_MARKERS = ("dataset", "model", "n_participants")
UNKNOWN = "unknown"
MIN_MODELS = 3

CORRELATION_COLUMNS = (
    "dataset",
    "score",
    "score_direction",
    "label",
    "encoder",
    "weights",
    "metric",
    "metric_direction",
    "method",
    "n_models",
    "coefficient",
    "ci_low",
    "ci_high",
    "sign",
    "agreement",
    "agreement_ci_low",
    "agreement_ci_high",
    "p_val",
    "p_val_method",
    "p_val_bh",
    "p_val_boot",
    "n_boot",
    "resampling",
    "ci_level",
    "error",
)

COMPARISON_COLUMNS = (
    "dataset",
    "score",
    "method",
    "metric_a",
    "metric_b",
    "criterion",
    "value_a",
    "value_b",
    "difference",
    "ci_low",
    "ci_high",
    "p_val",
    "p_val_bh",
    "n_models",
    "n_boot",
    "resampling",
    "ci_level",
)

UNMATCHED_COLUMNS = ("side", "kind", "dataset", "name", "reason")
MATCHED_COLUMNS = ("dataset", "model", "metrics_dataset", "metrics_model")


# --------------------------------------------------------------------------
# Directions


def metric_direction(metric: str, overrides: Mapping[str, str] | None = None) -> str:
    """Return ``'higher'``, ``'lower'`` or ``'none'`` for a metric name.

    Parameters
    ----------
    metric : str
        A metric name in any spelling (``FD_inf``, ``fd-inf`` and ``fdinf``
        are the same).
    overrides : mapping of str to str, optional
        Directions given by the user, keyed by metric name in any spelling;
        they win over :data:`METRIC_DIRECTIONS`.

    Returns
    -------
    str
        The direction, or ``'unknown'`` when the metric is neither known nor
        overridden.
    """
    key = normalize_name(metric)
    for name, direction in (overrides or {}).items():
        if normalize_name(name) == key:
            return direction
    return METRIC_DIRECTIONS.get(key, UNKNOWN)


def score_direction(score: str, override: str | None = None) -> str:
    """Return the direction of a human score (``'higher'``: more realistic).

    Raises
    ------
    ValueError
        If the score is not in :data:`SCORE_DIRECTIONS`, does not end in
        ``error_rate`` and no override is given, or the override is not
        ``higher`` or ``lower``.
    """
    if override is not None:
        if override not in ("higher", "lower"):
            raise ValueError(
                f"a score direction must be 'higher' or 'lower', not {override!r}"
            )
        return override
    if score in SCORE_DIRECTIONS:
        return SCORE_DIRECTIONS[score]
    if score.endswith("error_rate"):
        return "higher"
    raise ValueError(
        f"no known direction for the human score {score!r}; known: "
        f"{', '.join(SCORE_DIRECTIONS)} (or any *error_rate); say whether a "
        "higher value means a more realistic model with --score-direction"
    )


def parse_directions(items: Iterable[str]) -> dict[str, str]:
    """Parse ``METRIC=higher|lower|none`` strings into a mapping.

    Raises
    ------
    ValueError
        If an item lacks ``=`` or its direction is not one of
        :data:`DIRECTIONS`.
    """
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, direction = item.partition("=")
        direction = direction.strip().lower()
        if not sep or not name.strip():
            raise ValueError(f"direction {item!r} must look like METRIC=lower")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"direction {direction!r} for {name.strip()!r} is not allowed; "
                f"use one of {', '.join(DIRECTIONS)}"
            )
        parsed[name.strip()] = direction
    return parsed


def _sign(direction: str) -> float:
    return {"higher": 1.0, "lower": -1.0}.get(direction, np.nan)


# --------------------------------------------------------------------------
# Reading


@dataclass
class HumanData:
    """Human scores ready for correlation.

    ``kind`` is ``'scores'`` (one row per dataset and model, e.g.
    ``human_scores.csv``) or ``'participants'`` (one row per participant and
    model). ``table`` holds the rows as read.
    """

    kind: str
    table: pd.DataFrame
    sources: list[str] = field(default_factory=list)

    def score_columns(self) -> list[str]:
        """Numeric columns that can serve as the human score."""
        numeric = self.table.select_dtypes("number").columns
        # Counts, uncertainties and settings describe a score; they are not one.
        return [
            c
            for c in numeric
            if not c.startswith("n_")
            and c not in ("ci_low", "ci_high", "ci_level")
            and not c.endswith(("_sem", "_ci_low", "_ci_high", "_sd", "_se"))
        ]

    def check_score(self, score: str) -> None:
        """Raise ``ValueError`` naming the usable columns if ``score`` is absent."""
        if score not in self.score_columns():
            raise ValueError(
                f"the human data has no score column {score!r}; usable columns: "
                f"{', '.join(self.score_columns()) or '(none)'}"
            )

    def model_scores(self, score: str) -> pd.DataFrame:
        """Per-model human score.

        Returns
        -------
        pandas.DataFrame
            One row per dataset and model: ``dataset``, ``model``, ``value``
            (the score, unit of the score column), ``sem`` (its standard error
            over participants, same unit; ``NaN`` when unknown) and
            ``n_participants``.
        """
        self.check_score(score)
        if self.kind == "participants":
            rows = self.participant_rows(score)
            grouped = rows.groupby(["dataset", "model"], sort=False, observed=True)
            out = grouped[score].agg(value="mean", sem="sem", n_participants="size")
            return out.reset_index()
        table = self.table[_finite(self.table[score])]
        out = table[["dataset", "model"]].copy()
        out["value"] = table[score].astype(float)
        sem = f"{score}_sem"
        out["sem"] = table[sem].astype(float) if sem in table else np.nan
        n = table.get("n_participants")
        out["n_participants"] = np.nan if n is None else n.astype(float)
        return out.reset_index(drop=True)

    def missing_scores(self, score: str) -> pd.DataFrame:
        """Rows (per model or per participant) whose ``score`` is missing or
        infinite (both are left out)."""
        self.check_score(score)
        return self.table[~_finite(self.table[score])]

    def participant_rows(self, score: str) -> pd.DataFrame:
        """Per-participant rows (``dataset``, ``participant``, ``model`` and the
        score) whose ``score`` is present."""
        self.check_score(score)
        rows = self.table[["dataset", "participant", "model", score]]
        return rows[_finite(rows[score])]


def _finite(values: pd.Series) -> pd.Series:
    """True where a numeric column holds a finite number (not NaN, NA or inf)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return pd.Series(np.isfinite(numbers.to_numpy()), index=values.index)


def _header(path: Path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def read_human(
    paths: str | Path | Sequence[str | Path],
    *,
    dataset: str | None = None,
    aliases: Aliases | None = None,
) -> HumanData:
    """Read human scores or per-participant data, telling them apart by columns.

    Parameters
    ----------
    paths : path or sequence of paths
        Either ``human_scores.csv`` files from ``analysis fit`` (columns
        ``dataset``, ``model``, ``n_participants`` and score columns such as
        ``error_rate``, ``error_rate_sem``), or per-participant files of any
        kind :func:`analysis.readers.read_participants` reads (published
        per-participant CSVs, per-trial exports, per-participant tables). The
        two kinds cannot be mixed.
    dataset : str, optional
        The dataset of files that have no ``dataset`` column (per-participant
        files; by default a published file's dataset is its file-name stem).
    aliases : Aliases, optional
        Alias spellings, used to unify names across several human files.

    Returns
    -------
    HumanData
        ``kind`` ``'scores'`` with one row per dataset and model, or
        ``'participants'`` with the per-participant table of
        :func:`analysis.readers.read_participants` (``dataset``,
        ``participant``, ``model``, ``error_rate``, ``fake_error_rate``,
        ``real_error_rate``, ``answered_real_rate``, ... as proportions 0-1).

    Raises
    ------
    ValueError
        If a file cannot be read or is of no known kind, kinds are mixed, or
        a human-scores file repeats a dataset and model.
    """
    from analysis.readers import read_participants

    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise ValueError("no human data files given")
    kinds = {p: _human_kind(_header(p)) for p in files}
    if len(set(kinds.values())) > 1:
        listing = "; ".join(f"{p}: {k}" for p, k in kinds.items())
        raise ValueError(
            "the human files mix per-model scores and per-participant data "
            f"({listing}); give one kind"
        )
    sources = [str(p) for p in files]
    if next(iter(kinds.values())) == "participants":
        table = read_participants(files, dataset=dataset, aliases=aliases)
        _warn_shared_participants(table)
        return HumanData("participants", table, sources)
    frames = [_read_scores_file(p, dataset) for p in files]
    table = pd.concat(frames, ignore_index=True)
    repeated = table.duplicated(["dataset", "model"], keep=False)
    if repeated.any():
        first = table.loc[repeated, ["dataset", "model"]].iloc[0].tolist()
        raise ValueError(
            f"the human scores hold {int(repeated.sum())} rows for the same "
            f"dataset and model (e.g. {first[0]} / {first[1]}); give one row "
            "per dataset and model"
        )
    return HumanData("scores", table, sources)


def _human_kind(columns: list[str]) -> str:
    if set(SUMMARY_MARKERS) <= set(columns) and "participant" not in columns:
        return "scores"
    return "participants"


def _read_scores_file(path: Path, dataset: str | None) -> pd.DataFrame:
    table = pd.read_csv(path)
    if table.empty:
        raise ValueError(f"{path} has no rows")
    table["dataset"] = table["dataset"].astype("string")
    table["model"] = table["model"].astype("string")
    if dataset is not None:
        found = {normalize_name(d) for d in table["dataset"].dropna().unique()}
        if found != {normalize_name(dataset)}:
            raise ValueError(
                f"{path}: --dataset {dataset!r} conflicts with the file's dataset "
                f"column ({', '.join(sorted(table['dataset'].dropna().unique()))})"
            )
    if table[["dataset", "model"]].isna().any().any():
        raise ValueError(
            f"{path}: 'dataset' and 'model' must be filled in on every row"
        )
    return table


def _warn_shared_participants(table: pd.DataFrame) -> None:
    per_participant = table.groupby(["dataset", "participant"], observed=True)["model"]
    shared = per_participant.nunique()
    if (shared > 1).any():
        warnings.warn(
            f"{int((shared > 1).sum())} participants judged several models (within "
            "design); the bootstrap resamples participants independently within "
            "each model, which ignores that they are shared, so its intervals "
            "may be too narrow",
            stacklevel=3,
        )


def read_metric_table(path: str | Path, *, encoder: str | None = None) -> pd.DataFrame:
    """Read a tidy or wide metric table into the tidy layout.

    Parameters
    ----------
    path : str or Path
        A CSV file. Tidy: columns ``dataset, model, metric, value`` and
        usually ``encoder``, ``weights``, ``n_real``, ``n_generated``, as written by
        ``analysis metrics``. Wide: ``dataset, model`` (optionally
        ``encoder``, ``weights``) and one numeric column per metric, as in
        the published leaderboard; empty cells and ``-`` are missing values.
    encoder : str, optional
        The encoder of a table without an ``encoder`` column, such as the
        published leaderboard (default ``'unknown'``). Ignored, with a
        warning, for tables that name their encoder.

    Returns
    -------
    pandas.DataFrame
        Tidy rows ``dataset``, ``model``, ``encoder``, ``weights``
        (``'unknown'`` when not given; ``'random-init'`` marks randomly
        initialised encoders), ``metric`` and ``value`` (float, the metric's
        own unit; ``NaN`` when missing). Rows that score real data against
        itself (``Test Set``, ``Validation Set``, ``real``, ...) are dropped
        with a warning.

    Raises
    ------
    ValueError
        If the file cannot be read, lacks ``dataset`` or ``model``, a wide
        metric column is not numeric, a tidy ``value`` is not numeric, or a
        row repeats a dataset, model, encoder, weights and metric.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, na_values=["-", "–", "—"])
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read metric table {path}: {exc}") from exc
    missing = [c for c in ("dataset", "model") if c not in raw.columns]
    if missing:
        raise ValueError(
            f"metric table {path} lacks the column(s) {', '.join(missing)}; a tidy "
            f"table needs {', '.join(TIDY_COLUMNS)}, a wide one dataset, model and "
            "one column per metric"
        )
    if encoder is not None and "encoder" in raw.columns:
        warnings.warn(
            f"metric table {path} names its encoder(s); --encoder {encoder} is ignored",
            stacklevel=2,
        )
    if {"metric", "value"} <= set(raw.columns):
        tidy = _tidy_from_tidy(raw, path, encoder)
    else:
        tidy = _tidy_from_wide(raw, path, encoder)
    tidy = _drop_reference_rows(tidy, path)
    key = ["dataset", "model", "encoder", "weights", "metric"]
    repeated = tidy.duplicated(key, keep=False)
    if repeated.any():
        first = tidy.loc[repeated, key].iloc[0].tolist()
        raise ValueError(
            f"metric table {path} has {int(repeated.sum())} rows for the same "
            f"{', '.join(key)} (e.g. {' / '.join(map(str, first))})"
        )
    return tidy.reset_index(drop=True)


def _tidy_from_tidy(raw: pd.DataFrame, path: Path, encoder: str | None) -> pd.DataFrame:
    missing = [c for c in TIDY_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(
            f"tidy metric table {path} lacks the column(s) {', '.join(missing)}; "
            f"required: {', '.join(TIDY_COLUMNS)}"
        )
    values = pd.to_numeric(raw["value"], errors="coerce")
    bad = values.isna() & raw["value"].notna()
    if bad.any():
        raise ValueError(
            f"metric table {path}: 'value' must be numeric; found "
            f"{raw.loc[bad, 'value'].iloc[0]!r}"
        )
    tidy = raw[["dataset", "model", "metric"]].astype("string")
    for column, default in (("encoder", encoder or UNKNOWN), ("weights", UNKNOWN)):
        given = raw[column] if column in raw else pd.Series(default, index=raw.index)
        tidy[column] = given.astype("string").fillna(default)
    tidy["value"] = values.astype(float)
    return tidy[["dataset", "model", "encoder", "weights", "metric", "value"]]


def _tidy_from_wide(raw: pd.DataFrame, path: Path, encoder: str | None) -> pd.DataFrame:
    skip = set(WIDE_ID_COLUMNS) | set(WIDE_COUNT_COLUMNS)
    metric_columns = [c for c in raw.columns if c not in skip]
    if not metric_columns:
        raise ValueError(f"metric table {path} has no metric columns")
    not_numeric = [
        c for c in metric_columns if not pd.api.types.is_numeric_dtype(raw[c])
    ]
    if not_numeric:
        raise ValueError(
            f"metric table {path}: the column(s) {', '.join(not_numeric)} are not "
            "numeric; a wide table holds dataset, model (optionally encoder, "
            "weights, n_real, n_generated) and one numeric column per metric; a "
            "tidy one needs "
            f"{', '.join(TIDY_COLUMNS)}"
        )
    frame = raw.copy()
    if "encoder" not in frame:
        frame["encoder"] = encoder or UNKNOWN
    if "weights" not in frame:
        frame["weights"] = UNKNOWN
    long = frame.melt(
        id_vars=list(WIDE_ID_COLUMNS), value_vars=metric_columns, var_name="metric"
    )
    for column in ("dataset", "model", "encoder", "weights", "metric"):
        long[column] = long[column].astype("string")
    long["value"] = long["value"].astype(float)
    return long[["dataset", "model", "encoder", "weights", "metric", "value"]]


def _drop_reference_rows(tidy: pd.DataFrame, path: Path) -> pd.DataFrame:
    reference = tidy["model"].map(normalize_name).isin(REFERENCE_ROWS)
    if reference.any():
        names = sorted(tidy.loc[reference, "model"].unique())
        warnings.warn(
            f"metric table {path}: rows {', '.join(names)} score real data against "
            "itself and are not models; left out",
            stacklevel=3,
        )
    return tidy[~reference]


def metric_labels(tidy: pd.DataFrame) -> pd.Series:
    """One unambiguous label per (encoder, weights, metric) row of a tidy table.

    The label is the metric name when the encoder is unknown, else
    ``encoder/metric``; ``[weights]`` is appended when one encoder and metric
    come with several weights (for example ``[random-init]``).
    """
    base = tidy["metric"].where(
        tidy["encoder"] == UNKNOWN, tidy["encoder"] + "/" + tidy["metric"]
    )
    variants = tidy.groupby(base, observed=True)["weights"].transform("nunique")
    with_weights = base + " [" + tidy["weights"] + "]"
    labels = base.where(variants <= 1, with_weights)
    return labels.astype("string")


# --------------------------------------------------------------------------
# Matching


@dataclass
class TableMatch:
    """Datasets and models paired between the human data and a metric table.

    ``datasets`` lists ``(human spelling, metric-table spelling)`` pairs;
    ``matched`` and ``unmatched`` are described in :func:`match_tables`.
    """

    datasets: list[tuple[str, str]]
    matched: pd.DataFrame
    unmatched: pd.DataFrame


def match_tables(
    human_models: pd.DataFrame,
    metric_models: pd.DataFrame,
    aliases: Aliases | None = None,
) -> TableMatch:
    """Pair the datasets and models of the human data and the metric table.

    Parameters
    ----------
    human_models, metric_models : pandas.DataFrame
        Tables with ``dataset`` and ``model`` columns (repeats ignored).
    aliases : Aliases, optional
        Alias spellings from an alias file (see :mod:`analysis.names`).

    Returns
    -------
    TableMatch
        ``datasets``: the paired dataset names. ``matched``: one row per
        paired model, ``dataset``, ``model`` (the human data's spellings),
        ``metrics_dataset``, ``metrics_model`` (the metric table's).
        ``unmatched``: one row per name without a partner, ``side``
        (``human`` or ``metrics``), ``kind`` (``dataset`` or ``model``),
        ``dataset`` (that side's spelling), ``name`` and ``reason``.

    Raises
    ------
    analysis.names.NameMatchError
        If two names on one side become equal after normalisation and
        aliases.

    Notes
    -----
    Names are compared case- and punctuation-insensitively after the alias
    file, as in ``analysis fit``; a model alias may be scoped to a dataset by
    either side's spelling of it.

    Examples
    --------
    >>> human = pd.DataFrame({"dataset": ["cifar10"] * 2, "model": ["ACGAN", "X"]})
    >>> table = pd.DataFrame({"dataset": ["CIFAR10"], "model": ["acgan"]})
    >>> m = match_tables(human, table)
    >>> m.matched["metrics_model"].tolist(), m.unmatched["name"].tolist()
    (['acgan'], ['X'])
    """
    aliases = aliases or Aliases()
    matched: list[tuple[str, str, str, str]] = []
    unmatched: list[tuple[str, str, str, str, str]] = []
    datasets = match_names(
        human_models["dataset"].unique(),
        metric_models["dataset"].unique(),
        aliases,
        kind="dataset",
    )
    for name in datasets.unmatched_left:
        unmatched.append(("human", "dataset", name, name, "no such dataset in METRICS"))
    for name in datasets.unmatched_right:
        unmatched.append(("metrics", "dataset", name, name, "no such dataset in HUMAN"))
    for human_ds, metric_ds in datasets.pairs:
        left = human_models.loc[human_models["dataset"] == human_ds, "model"]
        right = metric_models.loc[metric_models["dataset"] == metric_ds, "model"]
        models = match_names(left, right, aliases, kind="model", dataset=human_ds)
        matched += [(human_ds, h, metric_ds, m) for h, m in models.pairs]
        unmatched += [
            ("human", "model", human_ds, n, f"no such model for {metric_ds} in METRICS")
            for n in models.unmatched_left
        ]
        unmatched += [
            ("metrics", "model", metric_ds, n, f"no such model for {human_ds} in HUMAN")
            for n in models.unmatched_right
        ]
    return TableMatch(
        datasets=list(datasets.pairs),
        matched=pd.DataFrame(matched, columns=list(MATCHED_COLUMNS), dtype="string"),
        unmatched=pd.DataFrame(
            unmatched, columns=list(UNMATCHED_COLUMNS), dtype="string"
        ),
    )


# --------------------------------------------------------------------------
# Correlation


@dataclass
class CorrelationResult:
    """Everything :func:`correlate` computes.

    ``correlations``, ``comparisons``, ``unmatched`` and ``matched`` are the
    tables described in :func:`correlate`; ``points`` holds the matched
    per-model values behind the scatter grid (``dataset``, ``model``,
    ``metrics_model``, ``label``, ``metric_value``, ``human_value``,
    ``human_sem``); ``messages`` the notes and per-dataset errors meant for
    the user (also reflected in the tables).
    """

    correlations: pd.DataFrame
    comparisons: pd.DataFrame
    unmatched: pd.DataFrame
    matched: pd.DataFrame
    points: pd.DataFrame
    score: str
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def correlate(
    human: HumanData,
    metrics: pd.DataFrame,
    *,
    aliases: Aliases | None = None,
    score: str = "error_rate",
    score_dir: str | None = None,
    methods: Sequence[str] = ("spearman", "kendall", "pearson"),
    n_boot: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
    directions: Mapping[str, str] | None = None,
    compare: str = "signed",
    progress: bool | None = None,
) -> CorrelationResult:
    """Correlate a human score with every metric, per dataset, with bootstrap CIs.

    Parameters
    ----------
    human : HumanData
        From :func:`read_human`.
    metrics : pandas.DataFrame
        A tidy metric table from :func:`read_metric_table`.
    aliases : Aliases, optional
        Alias spellings of dataset and model names.
    score : str, default 'error_rate'
        The human score column (``error_rate``, ``fake_error_rate``,
        ``real_error_rate``, ``answered_real_rate``, ...).
    score_dir : {'higher', 'lower'}, optional
        Whether a higher score means a more realistic model; needed only for
        scores without a known direction (:data:`SCORE_DIRECTIONS`).
    methods : sequence of str
        Any of ``spearman``, ``kendall`` (tau-b), ``pearson``.
    n_boot : int, default 9999
        Bootstrap resamples; 0 skips the bootstrap (no CIs, no comparisons).
    seed : int, default 0
        Seed of the bootstrap; the same seed gives the same result.
    confidence : float, default 0.95
        Level of the percentile intervals.
    directions : mapping of str to str, optional
        Metric directions (``higher``, ``lower``, ``none``) that override
        :data:`METRIC_DIRECTIONS`.
    compare : {'signed', 'abs'}, default 'signed'
        What the paired comparison compares: the signed agreement (for pairs
        of metrics that both have a direction; other pairs use the absolute
        coefficient) or always the absolute coefficient.
    progress : bool, optional
        Show a progress bar (default: when writing to a terminal).

    Returns
    -------
    CorrelationResult
        With these tables:

        ``correlations``, one row per dataset, metric and method:
        ``dataset``; ``score`` and ``score_direction``; ``label`` (see
        :func:`metric_labels`), ``encoder``, ``weights``, ``metric`` and
        ``metric_direction``; ``method``;
        ``n_models`` (matched models with a value); ``coefficient`` (raw,
        -1..1) with ``ci_low``, ``ci_high`` (percentile bootstrap); ``sign``
        (+1/-1, empty for direction ``none``); ``agreement`` = sign x
        coefficient with ``agreement_ci_low``, ``agreement_ci_high``;
        ``p_val`` (two-sided, from scipy's test of the point estimate, named
        in ``p_val_method``: ``spearmanr_t``, ``kendalltau_exact``,
        ``kendalltau_asymptotic`` or ``pearsonr_t``); ``p_val_bh``
        (Benjamini-Hochberg across the metrics of one dataset, score and
        method); ``p_val_boot`` (two-sided bootstrap p-value, see
        :func:`analysis.bootstrap.bootstrap_p_value`); ``n_boot`` (resamples
        with a defined coefficient); ``resampling`` (``models`` or
        ``models+participants``); ``ci_level``; ``error`` (empty, or why the
        row has no values: fewer than 3 matched models, or a side constant
        over the models, which leaves the coefficient, and so its interval,
        undefined). Infinite metric values and human scores count as
        missing, with a warning that names them.

        ``comparisons``, one row per dataset, method and pair of metrics:
        ``metric_a``, ``metric_b`` (labels from :func:`metric_labels`);
        ``criterion`` (``agreement`` or ``abs_coefficient``); ``value_a``,
        ``value_b`` and ``difference = value_a - value_b`` (positive: a
        agrees with people better); ``ci_low``, ``ci_high`` of the difference
        over the shared resamples; ``p_val`` (bootstrap, two-sided, H0: no
        difference); ``p_val_bh`` (BH across the pairs of one dataset, score
        and method); ``n_models``, ``n_boot``, ``resampling``, ``ci_level``.

        ``unmatched`` and ``matched``: see :func:`match_tables`.

    Raises
    ------
    ValueError
        For an unknown score, method, compare value, a negative ``n_boot`` or
        a confidence outside (0, 1). A dataset (or metric) with fewer than 3
        matched models raises nothing: it is named in ``errors`` and gets a
        row with ``error`` filled in, and the other datasets go on.

    Notes
    -----
    Per dataset, the human score of a model is the table's value (human
    scores) or the mean over its participants (per-participant data, the
    published definition). The bootstrap draws the dataset's models with
    replacement and, for per-participant data, each drawn model's
    participants with replacement (two levels); every metric and method is
    computed on the same resamples, so the differences between metrics are
    paired. Metric values are taken as fixed: their own sampling noise is not
    resampled. Resamples whose coefficient is undefined (a constant side) are
    left out; ``n_boot`` counts the others. Each dataset has its own random
    streams (:func:`analysis.bootstrap.dataset_rng`), so its results do not
    depend on the other datasets of the run.

    Resampling participants adds noise to each model's score on top of the
    noise already in it, which pulls resampled coefficients toward 0. Far
    from ±1 the effect is small; at ±1 a percentile interval can leave out
    its own estimate, and ``messages`` says so for each such row, naming
    what was resampled. Estimate and bounds that differ by floating-point
    rounding only (about 1e-12) count as equal.

    R equivalent of one coefficient and its interval::

        boot::boot(d, function(d, i) cor(d$human[i], d$metric[i],
                   method = "spearman"), R = 9999)
        cor.test(d$human, d$metric, method = "spearman")

    References
    ----------
    Efron, B. & Tibshirani, R. (1993). An Introduction to the Bootstrap, ch.
    13 (percentile intervals). Field, C. A. & Welsh, A. H. (2007).
    Bootstrapping clustered data. J. R. Stat. Soc. B 69(3), 369-390.
    Stein, G. et al. (2023). Exposing flaws of generative model evaluation
    metrics. NeurIPS 36.

    Examples
    --------
    >>> human = read_human(["cifar10.csv", "lsun256.csv"])  # doctest: +SKIP
    >>> table = read_metric_table("b.csv", encoder="dinov2_vitl14")  # doctest: +SKIP
    >>> aliases = Aliases.from_file("aliases.csv")  # doctest: +SKIP
    >>> result = correlate(human, table, aliases=aliases)  # doctest: +SKIP
    >>> result.correlations.query("metric == 'FD'")  # doctest: +SKIP
    """
    methods = check_methods(list(methods))
    if compare not in ("signed", "abs"):
        raise ValueError(f"compare must be 'signed' or 'abs', not {compare!r}")
    if n_boot < 0:
        raise ValueError(
            f"the number of bootstrap resamples must be >= 0, not {n_boot}"
        )
    if not 0 < confidence < 1:
        raise ValueError(
            f"confidence must lie strictly between 0 and 1, not {confidence}"
        )
    human_dir = score_direction(score, score_dir)
    human.check_score(score)
    _warn_missing(human, score)

    scores = human.model_scores(score)
    match = match_tables(scores, metrics, aliases)
    metrics = metrics.assign(label=metric_labels(metrics))
    people = human.participant_rows(score) if human.kind == "participants" else None
    context = _Context(
        human=human,
        people=people,
        score=score,
        score_dir=human_dir,
        methods=methods,
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        directions=dict(directions or {}),
        compare=compare,
    )
    result = CorrelationResult(
        correlations=pd.DataFrame(columns=list(CORRELATION_COLUMNS)),
        comparisons=pd.DataFrame(columns=list(COMPARISON_COLUMNS)),
        unmatched=match.unmatched,
        matched=match.matched,
        points=pd.DataFrame(),
        score=score,
    )
    _note_unmatched(result)
    _note_directions(metrics, context, result)

    n_blocks = len(resample_blocks(n_boot))
    outcomes = []
    with tqdm(
        total=n_blocks * len(match.datasets),
        desc="bootstrap",
        unit="block",
        disable=(not progress) if progress is not None else None,
    ) as bar:
        for human_ds, metric_ds in match.datasets:
            pairs = match.matched[match.matched["dataset"] == human_ds]
            outcomes.append(
                _correlate_dataset(
                    human_ds, metric_ds, pairs, scores, metrics, context, bar
                )
            )
    for outcome in outcomes:
        result.messages += outcome.messages
        result.errors += outcome.errors
    if outcomes:
        result.correlations = pd.concat(
            [o.correlations for o in outcomes], ignore_index=True
        )
        result.comparisons = pd.concat(
            [o.comparisons for o in outcomes], ignore_index=True
        )
        result.points = pd.concat([o.points for o in outcomes], ignore_index=True)
    return result


def _warn_missing(human: HumanData, score: str) -> None:
    lost = human.missing_scores(score)
    if lost.empty:
        return
    what = "participant rows" if human.kind == "participants" else "models"
    # Infinite scores are treated as missing, but said to be infinite.
    infinite = lost[score].notna()
    for rows, how in ((lost[~infinite], "no"), (lost[infinite], "an infinite")):
        if rows.empty:
            continue
        names = ", ".join(
            f"{d} / {m}" for d, m in rows[["dataset", "model"]].values[:5]
        )
        warnings.warn(
            f"{len(rows)} {what} have {how} {score} and are left out (e.g. {names})",
            stacklevel=3,
        )


def _note_unmatched(result: CorrelationResult) -> None:
    for row in result.unmatched.itertuples(index=False):
        side = "HUMAN" if row.side == "human" else "METRICS"
        if row.kind == "dataset":
            result.messages.append(f"unmatched dataset in {side}: {row.name}")
        else:
            result.messages.append(
                f"unmatched model in {side}: {row.dataset} / {row.name}"
            )


def _note_directions(
    metrics: pd.DataFrame, context: _Context, result: CorrelationResult
) -> None:
    unknown = sorted(
        {
            m
            for m in metrics["metric"].unique()
            if metric_direction(m, context.directions) == UNKNOWN
        }
    )
    if unknown:
        result.messages.append(
            f"no known direction for metric(s) {', '.join(unknown)}: their sign and "
            "agreement are left empty; set one with --direction METRIC=higher|lower"
        )


@dataclass
class _Context:
    human: HumanData
    people: pd.DataFrame | None
    score: str
    score_dir: str
    methods: tuple[str, ...]
    n_boot: int
    seed: int
    confidence: float
    directions: dict[str, str]
    compare: str

    @property
    def resampling(self) -> str:
        if self.human.kind == "participants":
            return "models+participants"
        return "models"


@dataclass
class _Outcome:
    correlations: pd.DataFrame
    comparisons: pd.DataFrame
    points: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _correlate_dataset(
    dataset: str,
    metric_dataset: str,
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    context: _Context,
    bar: tqdm,
) -> _Outcome:
    n_matched = len(pairs)
    if n_matched < MIN_MODELS:
        message = (
            f"dataset {dataset}: only {n_matched} matched model(s), at least "
            f"{MIN_MODELS} are needed; no correlations for it"
        )
        bar.update(len(resample_blocks(context.n_boot)))
        row = _empty_row(dataset, context, n_matched, message)
        return _Outcome(
            correlations=pd.DataFrame([row], columns=list(CORRELATION_COLUMNS)),
            comparisons=pd.DataFrame(columns=list(COMPARISON_COLUMNS)),
            points=pd.DataFrame(),
            errors=[message],
        )

    human_rows = scores[scores["dataset"] == dataset].set_index("model")
    models = pairs["model"].tolist()
    human_values = human_rows.loc[models, "value"].to_numpy(dtype=float)
    in_ds = metrics[metrics["dataset"] == metric_dataset]
    wide = in_ds.pivot_table(
        index="model", columns="label", values="value", aggfunc="first", dropna=False
    )
    all_labels = list(dict.fromkeys(in_ds["label"]))
    # Infinite metric values (a diverged FD, say) are missing values, named
    # as infinite in the warnings.
    infinite_wide = pd.DataFrame(
        np.isinf(wide.to_numpy(dtype=float)), index=wide.index, columns=wide.columns
    )
    wide = wide.mask(infinite_wide)
    labels = [lab for lab in all_labels if wide[lab].notna().any()]
    outcome = _Outcome(
        correlations=pd.DataFrame(columns=list(CORRELATION_COLUMNS)),
        comparisons=pd.DataFrame(columns=list(COMPARISON_COLUMNS)),
        points=pd.DataFrame(),
    )
    empty = [lab for lab in all_labels if lab not in labels]
    if empty:
        names = [
            f"{lab} (infinite)" if infinite_wide[lab].any() else lab for lab in empty
        ]
        outcome.messages.append(
            f"dataset {dataset}: no values for {', '.join(names)}; skipped"
        )
    # K x M: metric k's value for matched model m, NaN where missing.
    values = wide.reindex(pairs["metrics_model"].tolist())[labels].to_numpy(float).T
    values = values.reshape(len(labels), n_matched)
    infinite = (
        infinite_wide.reindex(pairs["metrics_model"].tolist())[labels]
        .fillna(False)
        .to_numpy(bool)
        .T.reshape(len(labels), n_matched)
    )
    info = in_ds.drop_duplicates("label").set_index("label")

    participants = None
    if context.people is not None:
        rows = context.people[context.people["dataset"] == dataset]
        by_model = dict(tuple(rows.groupby("model", sort=False, observed=True)))
        groups = [by_model[m][context.score].to_numpy() for m in models]
        participants = Participants.from_groups(groups)

    counts = (~np.isnan(values)).sum(axis=1)
    usable = counts >= MIN_MODELS
    _warn_partial(dataset, labels, values, models, infinite)
    kept = [lab for lab, ok in zip(labels, usable, strict=True) if ok]
    draws = _bootstrap(
        dataset, human_values, values[usable], participants, context, bar
    )
    points = _point_estimates(human_values, values[usable], context.methods)
    undefined = _drop_undefined(dataset, kept, points, draws)
    outcome.messages += list(undefined.values())

    frames = [
        _correlation_rows(
            dataset, kept, info, values[usable], points, draws, context, undefined
        )
    ]
    for label, n in zip(labels, counts, strict=True):
        if n < MIN_MODELS:
            n_inf = int(infinite[labels.index(label)].sum())
            message = (
                f"dataset {dataset}: metric {label} has values for only {n} matched "
                f"model(s), at least {MIN_MODELS} are needed"
                + (f" ({n_inf} infinite values left out)" if n_inf else "")
            )
            outcome.errors.append(message)
            frames.append(_short_rows(dataset, label, int(n), info, context, message))
    outcome.correlations = pd.concat(frames, ignore_index=True)
    outcome.messages += _outside_interval(dataset, outcome.correlations)
    outcome.comparisons = _comparison_rows(
        dataset, kept, info, points, draws, context, n_matched
    )
    outcome.points = _points(dataset, pairs, labels, values, human_rows)
    return outcome


# Coefficients and their bounds are computed in floating point, and one
# ulp or so separates, say, a Kendall tau of -0.9999999999999998 from the
# -1.0 of every resample: within this many units of float64 epsilon (about
# 1e-12, far below the 3 decimals printed) a bound counts as reached.
_INTERVAL_TOLERANCE = 4096 * np.finfo(float).eps

# Why a percentile interval can leave out its estimate, by what is resampled.
_OUTSIDE_REASONS = {
    "models": "only models are resampled (the human scores are one value per "
    "model); near +-1 their bootstrap distribution is skewed and repeated "
    "models tie, so a percentile interval can miss its estimate",
    "models+participants": "models and the participants within them are "
    "resampled; the participant noise this adds pulls coefficients near +-1 "
    "toward 0",
}


def _outside_interval(dataset: str, correlations: pd.DataFrame) -> list[str]:
    """Notes for estimates that their own percentile interval leaves out."""
    rows = correlations.dropna(subset=["coefficient", "ci_low", "ci_high"])
    tolerance = _INTERVAL_TOLERANCE
    outside = rows[
        (rows["coefficient"] < rows["ci_low"] - tolerance)
        | (rows["coefficient"] > rows["ci_high"] + tolerance)
    ]
    return [
        f"dataset {dataset}: the {row.ci_level:.0%} interval of {row.label} "
        f"({row.method}) is [{row.ci_low:.3f}, {row.ci_high:.3f}] and leaves out "
        f"the estimate {row.coefficient:.3f}: "
        + _OUTSIDE_REASONS.get(row.resampling, _OUTSIDE_REASONS["models"])
        for row in outside.itertuples(index=False)
    ]


def _empty_row(dataset: str, context: _Context, n_models: int, error: str) -> dict:
    row: dict[str, object] = {c: np.nan for c in CORRELATION_COLUMNS}
    row.update(
        dataset=dataset,
        score=context.score,
        score_direction=context.score_dir,
        n_models=n_models,
        resampling=context.resampling,
        ci_level=context.confidence,
        error=error,
    )
    return row


def _warn_partial(
    dataset: str,
    labels: list[str],
    values: np.ndarray,
    models: list[str],
    infinite: np.ndarray,
) -> None:
    present = ~np.isnan(values)
    for label, row, inf in zip(labels, present, infinite, strict=True):
        if MIN_MODELS <= row.sum() < row.size:
            lost = [
                f"{m} (infinite)" if is_inf else m
                for m, ok, is_inf in zip(models, row, inf, strict=True)
                if not ok
            ]
            warnings.warn(
                f"dataset {dataset}: metric {label} has no value for "
                f"{', '.join(lost)}; its correlations leave them out",
                stacklevel=4,
            )


def _drop_undefined(
    dataset: str,
    labels: list[str],
    points: dict[str, _Points],
    draws: dict[str, np.ndarray],
) -> dict[tuple[str, str], str]:
    """Blank the resamples of coefficients whose point estimate is undefined.

    A constant side over the matched models has no coefficient, while
    resamples of participants can still vary; an interval around no estimate
    means nothing. Returns why, keyed by (label, method), for the error column.
    """
    why = {}
    for method, point in points.items():
        missing = np.isnan(point.coefficient)
        draws[method][:, missing] = np.nan
        for k in np.flatnonzero(missing):
            why[(labels[k], method)] = (
                f"dataset {dataset}: the {method} coefficient of {labels[k]} is "
                "undefined: the human scores or the metric values are constant "
                "over the matched models"
            )
    return why


def _bootstrap(
    dataset: str,
    human_values: np.ndarray,
    values: np.ndarray,
    participants: Participants | None,
    context: _Context,
    bar: tqdm,
) -> dict[str, np.ndarray]:
    """Coefficients of every resample: method -> array (n_boot, K)."""
    out = {
        m: np.full((context.n_boot, values.shape[0]), np.nan) for m in context.methods
    }
    key = normalize_name(dataset)
    for number, block in enumerate(resample_blocks(context.n_boot)):
        if values.shape[0]:
            rng = dataset_rng(context.seed, key, number)
            size = block.stop - block.start
            coefs = bootstrap_block(
                rng, size, human_values, values, context.methods, participants
            )
            for method, array in coefs.items():
                out[method][block] = array
        bar.update(1)
    return out


@dataclass
class _Points:
    coefficient: np.ndarray
    p_val: np.ndarray
    p_method: list[str]


def _point_estimates(
    human_values: np.ndarray, values: np.ndarray, methods: tuple[str, ...]
) -> dict[str, _Points]:
    out = {}
    for method in methods:
        found = [_point_estimate(method, human_values, row) for row in values]
        out[method] = _Points(
            coefficient=np.array([f[0] for f in found], dtype=float),
            p_val=np.array([f[1] for f in found], dtype=float),
            p_method=[f[2] for f in found],
        )
    return out


def _point_estimate(
    method: str, x: np.ndarray, y: np.ndarray
) -> tuple[float, float, str]:
    """Coefficient, p-value and the name of scipy's test, on complete pairs."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, ""
    if method == "spearman":
        res = stats.spearmanr(x, y)
        return float(res.statistic), float(res.pvalue), "spearmanr_t"
    if method == "pearson":
        res = stats.pearsonr(x, y)
        return float(res.statistic), float(res.pvalue), "pearsonr_t"
    # scipy's rule for method='auto', made explicit so the output can name it:
    # the exact null distribution without ties up to 33 pairs.
    ties = len(np.unique(x)) < len(x) or len(np.unique(y)) < len(y)
    how = "asymptotic" if ties or len(x) > 33 else "exact"
    res = stats.kendalltau(x, y, method=how)
    return float(res.statistic), float(res.pvalue), f"kendalltau_{how}"


def _correlation_rows(
    dataset: str,
    labels: list[str],
    info: pd.DataFrame,
    values: np.ndarray,
    points: dict[str, _Points],
    draws: dict[str, np.ndarray],
    context: _Context,
    undefined: Mapping[tuple[str, str], str],
) -> pd.DataFrame:
    rows = []
    for method in context.methods:
        low, high = percentile_interval(draws[method], context.confidence)
        p_boot = bootstrap_p_value(draws[method])
        n_valid = (~np.isnan(draws[method])).sum(axis=0)
        point = points[method]
        # One family per dataset, score and method: the metrics compared.
        p_bh = bh_adjust(point.p_val)
        for k, label in enumerate(labels):
            meta = info.loc[label]
            m_dir = metric_direction(str(meta["metric"]), context.directions)
            sign = _sign(context.score_dir) * _sign(m_dir)
            coef = point.coefficient[k]
            agree_low, agree_high = sorted([sign * low[k], sign * high[k]])
            rows.append(
                {
                    "dataset": dataset,
                    "score": context.score,
                    "score_direction": context.score_dir,
                    "label": label,
                    "encoder": meta["encoder"],
                    "weights": meta["weights"],
                    "metric": meta["metric"],
                    "metric_direction": m_dir,
                    "method": method,
                    "n_models": int((~np.isnan(values[k])).sum()),
                    "coefficient": coef,
                    "ci_low": low[k],
                    "ci_high": high[k],
                    "sign": sign,
                    "agreement": sign * coef,
                    "agreement_ci_low": agree_low,
                    "agreement_ci_high": agree_high,
                    "p_val": point.p_val[k],
                    "p_val_method": point.p_method[k],
                    "p_val_bh": p_bh[k],
                    "p_val_boot": p_boot[k] if context.n_boot else np.nan,
                    "n_boot": int(n_valid[k]),
                    "resampling": context.resampling,
                    "ci_level": context.confidence,
                    "error": undefined.get((label, method), ""),
                }
            )
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def _short_rows(
    dataset: str,
    label: str,
    n: int,
    info: pd.DataFrame,
    context: _Context,
    message: str,
) -> pd.DataFrame:
    meta = info.loc[label]
    rows = []
    for method in context.methods:
        row = _empty_row(dataset, context, n, message)
        row.update(
            label=label,
            encoder=meta["encoder"],
            weights=meta["weights"],
            metric=meta["metric"],
            metric_direction=metric_direction(str(meta["metric"]), context.directions),
            method=method,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def _comparison_rows(
    dataset: str,
    labels: list[str],
    info: pd.DataFrame,
    points: dict[str, _Points],
    draws: dict[str, np.ndarray],
    context: _Context,
    n_models: int,
) -> pd.DataFrame:
    if context.n_boot == 0 or len(labels) < 2:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    signs = np.array(
        [
            _sign(context.score_dir)
            * _sign(metric_direction(str(info.loc[lab, "metric"]), context.directions))
            for lab in labels
        ]
    )
    first, second = np.triu_indices(len(labels), k=1)
    # Pairs where either metric lacks a direction compare |coefficient|.
    signed = (context.compare == "signed") & ~np.isnan(signs[first] + signs[second])
    frames = []
    for method in context.methods:
        coefs = points[method].coefficient
        boot = draws[method]
        # n_boot x P: the criterion of each metric of each pair, per resample.
        # Both come from the same resamples, so the difference is paired:
        # model and participant noise shared by the two metrics cancels.
        value_a = np.where(signed, coefs[first] * signs[first], np.abs(coefs[first]))
        value_b = np.where(signed, coefs[second] * signs[second], np.abs(coefs[second]))
        boot_a = np.where(signed, boot[:, first] * signs[first], np.abs(boot[:, first]))
        boot_b = np.where(
            signed, boot[:, second] * signs[second], np.abs(boot[:, second])
        )
        diff = boot_a - boot_b
        low, high = percentile_interval(diff, context.confidence)
        p_val = bootstrap_p_value(diff)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "score": context.score,
                    "method": method,
                    "metric_a": [labels[i] for i in first],
                    "metric_b": [labels[i] for i in second],
                    "criterion": np.where(signed, "agreement", "abs_coefficient"),
                    "value_a": value_a,
                    "value_b": value_b,
                    "difference": value_a - value_b,
                    "ci_low": low,
                    "ci_high": high,
                    "p_val": p_val,
                    # One family per dataset, score and method: all pairs.
                    "p_val_bh": bh_adjust(p_val),
                    "n_models": n_models,
                    "n_boot": (~np.isnan(diff)).sum(axis=0),
                    "resampling": context.resampling,
                    "ci_level": context.confidence,
                },
                columns=list(COMPARISON_COLUMNS),
            )
        )
    return pd.concat(frames, ignore_index=True)


def _points(
    dataset: str,
    pairs: pd.DataFrame,
    labels: list[str],
    values: np.ndarray,
    human_rows: pd.DataFrame,
) -> pd.DataFrame:
    frames = []
    models = pairs["model"].tolist()
    for k, label in enumerate(labels):
        frames.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "model": models,
                    "metrics_model": pairs["metrics_model"].tolist(),
                    "label": label,
                    "metric_value": values[k],
                    "human_value": human_rows.loc[models, "value"].to_numpy(float),
                    "human_sem": human_rows.loc[models, "sem"].to_numpy(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------
# Report


def scatter_grid(result: CorrelationResult, method: str | None = None):
    """A plotly figure: human score against each metric, one panel per dataset.

    Parameters
    ----------
    result : CorrelationResult
        From :func:`correlate`.
    method : str, optional
        The method whose coefficient is written in each panel's title
        (default: the first one computed).

    Returns
    -------
    plotly.graph_objects.Figure
        A grid with one row per metric and one column per dataset; each point
        is a matched model (hover: the model's names in both sources and its
        values), with ± 1 SEM error bars on the human score where known.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = result.points
    if points.empty:
        return go.Figure()
    datasets = list(dict.fromkeys(points["dataset"]))
    labels = list(dict.fromkeys(points["label"]))
    corr = result.correlations
    method = method or (corr["method"].dropna().iloc[0] if not corr.empty else None)
    titles = []
    for label in labels:
        for ds in datasets:
            titles.append(_panel_title(corr, ds, label, method))
    fig = make_subplots(
        rows=len(labels),
        cols=len(datasets),
        subplot_titles=titles,
        horizontal_spacing=0.06,
        vertical_spacing=min(0.08, 0.5 / max(1, len(labels))),
    )
    # One colour per dataset, the same in every row.
    palette = [
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#9467bd",
        "#ff7f0e",
        "#17becf",
        "#8c564b",
        "#e377c2",
    ]
    for r, label in enumerate(labels, start=1):
        for c, ds in enumerate(datasets, start=1):
            colour = palette[(c - 1) % len(palette)]
            panel = points[(points["dataset"] == ds) & (points["label"] == label)]
            panel = panel.dropna(subset=["metric_value"])
            if panel.empty:
                continue
            sem = panel["human_sem"]
            fig.add_trace(
                go.Scatter(
                    x=panel["metric_value"],
                    y=panel["human_value"],
                    mode="markers",
                    marker={"color": colour, "size": 7},
                    name=f"{ds} · {label}",
                    text=panel["model"],
                    customdata=panel[["metrics_model"]],
                    error_y=None
                    if sem.isna().all()
                    else {
                        "type": "data",
                        "array": sem.fillna(0),
                        "thickness": 1,
                        "color": colour,
                    },
                    hovertemplate=(
                        "<b>%{text}</b> (%{customdata[0]})<br>"
                        f"{html.escape(label)}: %{{x}}<br>"
                        f"{result.score}: %{{y:.4f}}<extra></extra>"
                    ),
                    showlegend=False,
                ),
                row=r,
                col=c,
            )
            fig.update_xaxes(title_text=label, row=r, col=c)
            if c == 1:
                fig.update_yaxes(title_text=result.score, row=r, col=c)
    fig.update_layout(
        height=max(420, 300 * len(labels)),
        width=max(700, 360 * len(datasets)),
        title=f"Human {result.score} (mean ± SEM) against each metric",
    )
    # Subplot titles are annotations; keep them small enough to fit a panel.
    fig.update_annotations(font_size=12)
    return fig


def _panel_title(
    corr: pd.DataFrame, dataset: str, label: str, method: str | None
) -> str:
    """``dataset: method r`` (the metric is on the panel's x axis)."""
    hit = corr[
        (corr["dataset"] == dataset)
        & (corr["label"] == label)
        & (corr["method"] == method)
    ]
    if hit.empty or pd.isna(hit["coefficient"].iloc[0]):
        return dataset
    return f"{dataset}: {method} {hit['coefficient'].iloc[0]:+.2f}"


def write_report(result: CorrelationResult, path: str | Path) -> Path:
    """Write a self-contained HTML report (plotly.js inlined, no network needed).

    The page states the sign convention, lists errors and unmatched names,
    shows the correlation and comparison tables and the scatter grid of
    :func:`scatter_grid`.
    """
    import plotly.io as pio

    path = Path(path)
    figure = pio.to_html(scatter_grid(result), include_plotlyjs=True, full_html=False)
    shown = result.correlations.copy()
    numeric = shown.select_dtypes("number").columns
    shown[numeric] = shown[numeric].round(4)
    comparisons = result.comparisons.copy()
    numeric = comparisons.select_dtypes("number").columns
    comparisons[numeric] = comparisons[numeric].round(4)
    notes = "".join(
        f"<li>{html.escape(m)}</li>" for m in result.errors + result.messages
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Human scores against metrics</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;
font-size:0.8em}}td,th{{border:1px solid #ccc;padding:2px 5px}}</style>
</head><body>
<h1>Which metric agrees with people?</h1>
<p>Human score: <code>{html.escape(result.score)}</code>. <b>Sign convention:</b>
<code>coefficient</code> is the raw correlation of the human score with the metric;
<code>agreement</code> = sign &times; coefficient, where sign is +1 when a better
value of the metric (lower for FD, FD_inf, KD; higher for precision, recall,
density, coverage, AuthPct, FLS) and a more realistic model by the human score
(higher error rate) go the same way. Positive agreement means the metric ranks
models as people do. Metrics without a better end (C_T) get no agreement.</p>
<h2>Notes and errors</h2><ul>{notes or "<li>none</li>"}</ul>
<h2>Scatter grid</h2>{figure}
<h2>Correlations</h2>{shown.to_html(index=False, na_rep="")}
<h2>Paired comparisons between metrics</h2>
{comparisons.to_html(index=False, na_rep="")}
<h2>Unmatched names</h2>{result.unmatched.to_html(index=False, na_rep="")}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def write_outputs(result: CorrelationResult, out: str | Path) -> dict[str, Path]:
    """Write correlations.csv, comparisons.csv, unmatched.csv, matched.csv and
    report.html into ``out`` (created if needed); return their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "correlations": out / "correlations.csv",
        "comparisons": out / "comparisons.csv",
        "unmatched": out / "unmatched.csv",
        "matched": out / "matched.csv",
        "report": out / "report.html",
    }
    result.correlations.to_csv(paths["correlations"], index=False)
    result.comparisons.to_csv(paths["comparisons"], index=False)
    result.unmatched.to_csv(paths["unmatched"], index=False)
    result.matched.to_csv(paths["matched"], index=False)
    write_report(result, paths["report"])
    return paths
