"""Reading human responses: per-trial exports and the published releases.

Three inputs are understood, and :func:`detect_format` tells them apart by
their columns:

``trials``
    This project's per-trial export (CSV or Parquet; the columns of
    :data:`study_server.export_schema.TRIAL_COLUMNS`), one row per trial.
``participants``
    A published per-participant CSV (Stein et al. 2023, the ``dgm-eval``
    release): ``id, model, num_correct, err_rt, f_err_rt, r_err_rt, r_ans_rt,
    resp_time, f_resp_time, r_resp_time``, one row per participant who judged
    100 real and 100 generated images.
``images``
    A published per-image CSV of the same release: ``model, generated,
    image_path, number_guesses, number_guesses_generated, soft_label``, one
    row per (model, image) with guess counts pooled over participants.

A fourth format, ``participant_table``, is this module's own output
(:func:`read_participants` written to CSV, e.g. ``participants.csv`` from
``analysis fit``); reading it back gives the same table.

Identity
--------
A participant is identified by ``(dataset, participant)``: the published ids
restart at ``participant_0`` in every file, so the dataset is part of the
identity. In a within design one participant judges several models, so the
per-participant table has one row per ``(dataset, participant, model)``; in
the published between design that is one row per participant.

Names
-----
Dataset and model names from several files are unified case- and
punctuation-insensitively (:func:`analysis.names.normalize_name`), with an
alias file (:class:`analysis.names.Aliases`) for the rest. The spelling kept
is the alias file's ``name`` when some file uses it, otherwise the first
spelling met; every respelling is reported with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.names import Aliases, normalize_name
from study_server.export_schema import TRIAL_COLUMNS
from study_server.export_schema import dtypes as schema_dtypes
from study_server.export_schema import names as schema_names

FORMATS = ("trials", "participants", "images", "participant_table")

RESPONSES = ("real", "generated")
TRIAL_KINDS = ("practice", "main", "check")

# Columns a per-trial file must have for any analysis; the others of the export
# schema (session, session_status, rt_ms, timing flags, ...) are optional and
# only the exclusion rules that need them require them.
TRIAL_REQUIRED = ("participant", "model", "stimulus", "is_real", "kind", "response")

# Published per-participant CSV column -> per-participant table column.
PUBLISHED_PARTICIPANT_COLUMNS = {
    "id": "participant",
    "model": "model",
    "num_correct": "n_correct",
    "err_rt": "error_rate",
    "f_err_rt": "fake_error_rate",
    "r_err_rt": "real_error_rate",
    "r_ans_rt": "answered_real_rate",
    "resp_time": "rt_total_s",
    "f_resp_time": "fake_rt_total_s",
    "r_resp_time": "real_rt_total_s",
}

# Published per-image CSV column -> per-image table column.
PUBLISHED_IMAGE_COLUMNS = {
    "model": "model",
    "generated": "generated",
    "image_path": "image",
    "number_guesses": "n_judgements",
    "number_guesses_generated": "n_judged_generated",
}

# The published protocol: every participant judged 100 generated and 100 real
# images (Stein et al. 2023, §3; the release's README: "num_correct (of 200)").
PUBLISHED_FAKE_TRIALS = 100
PUBLISHED_REAL_TRIALS = 100

# File stems of the published per-image release -> the dataset names used by
# the per-participant release of the same study.
PUBLISHED_IMAGE_FILE_DATASETS = {
    "cifar10_labeled_data": "cifar10",
    "ffhq_labeled_data": "ffhq256",
    "imagenet_labeled_data": "imagenet256",
    "lsun_labeled_data": "lsun256",
}

PARTICIPANT_TABLE_COLUMNS = (
    "dataset",
    "participant",
    "model",
    "n_trials",
    "n_correct",
    "error_rate",
    "n_fake_trials",
    "fake_error_rate",
    "n_real_trials",
    "real_error_rate",
    "answered_real_rate",
)
RT_COLUMNS = ("rt_total_s", "fake_rt_total_s", "real_rt_total_s", "rt_median_ms")

IMAGE_TABLE_COLUMNS = (
    "dataset",
    "model",
    "image",
    "is_real",
    "n_judgements",
    "n_judged_generated",
    "soft_label",
    "n_errors",
    "error_rate",
)

_TRUE = frozenset({"true", "t", "1", "yes"})
_FALSE = frozenset({"false", "f", "0", "no"})


def detect_format(path: str | Path) -> str:
    """Tell which of the known inputs a file is, from its columns.

    Parameters
    ----------
    path : str or Path
        A CSV file (or, for per-trial exports, a ``.parquet`` file).

    Returns
    -------
    str
        One of ``'trials'``, ``'participants'``, ``'images'`` or
        ``'participant_table'`` (see the module docstring).

    Raises
    ------
    ValueError
        If the file cannot be read or its columns match no known format; the
        message lists the columns each format needs.
    """
    columns = set(_header(Path(path)))
    if set(PUBLISHED_PARTICIPANT_COLUMNS) <= columns:
        return "participants"
    if set(PUBLISHED_IMAGE_COLUMNS) <= columns:
        return "images"
    if set(TRIAL_REQUIRED) <= columns:
        return "trials"
    if {"participant", "model", "n_trials", "error_rate"} <= columns:
        return "participant_table"
    raise ValueError(
        f"cannot tell the format of {path}: its columns are "
        f"{', '.join(sorted(columns)) or '(none)'}. Known formats need: "
        f"trials: {', '.join(TRIAL_REQUIRED)}; "
        f"participants: {', '.join(PUBLISHED_PARTICIPANT_COLUMNS)}; "
        f"images: {', '.join(PUBLISHED_IMAGE_COLUMNS)}; "
        "participant_table: participant, model, n_trials, error_rate"
    )


def read_participants(
    paths: str | Path | Iterable[str | Path],
    *,
    dataset: str | None = None,
    aliases: Aliases | str | Path | None = None,
    file_format: str | None = None,
) -> pd.DataFrame:
    """Read per-participant human data from published CSVs or trial exports.

    Parameters
    ----------
    paths : path or iterable of paths
        Published per-participant CSVs, this project's per-trial exports, or
        per-participant tables written by this module, in any mix.
    dataset : str, optional
        The dataset of every file. By default a published per-participant
        file's dataset is its file name stem (``cifar10.csv`` -> ``cifar10``)
        and a per-trial export's comes from its ``dataset`` column.
    aliases : Aliases or path, optional
        Alias spellings of dataset and model names (an
        :class:`analysis.names.Aliases` or the path of an alias file).
    file_format : {'participants', 'participant_table', 'trials'}, optional
        Read every file as this format instead of detecting it per file
        (:func:`detect_format`); a file that lacks the format's columns is
        then reported with the missing columns named.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, participant, model)`` (one per participant in
        a between design), sorted by dataset and model, in file order within
        a model:

        - ``dataset``, ``participant``, ``model`` (str): identity.
        - ``n_trials`` (int): main trials judged on this model (generated)
          and on real images.
        - ``n_correct`` (int): of those, judged correctly.
        - ``error_rate`` (float, proportion 0-1): ``1 - n_correct / n_trials``.
        - ``n_fake_trials``, ``n_real_trials`` (int): generated and real
          trials.
        - ``fake_error_rate`` (float, 0-1): generated images judged real.
        - ``real_error_rate`` (float, 0-1): real images judged generated.
        - ``answered_real_rate`` (float, 0-1): trials answered "real".
        - ``rt_total_s``, ``fake_rt_total_s``, ``real_rt_total_s`` (float,
          seconds): summed response times over all, generated and real trials.
        - ``rt_median_ms`` (float, milliseconds): median response time; only
          from per-trial exports (the published files hold totals only).

        Response-time columns are absent when no source has them.

    Raises
    ------
    ValueError
        For unreadable files, missing columns (named), a per-image file
        (which holds no participants), a missing dataset, inconsistent
        published counts, or a participant that appears twice in one dataset.

    Notes
    -----
    Per-trial exports are summarised from their answered ``main`` trials as
    they are, without exclusions; :func:`analysis.exclude.apply_exclusions`
    followed by :func:`participants_from_trials` gives the table after
    exclusions (``analysis fit`` writes it as ``participants.csv``).

    A published row holds rates over 100 generated and 100 real images
    (:data:`PUBLISHED_FAKE_TRIALS`, :data:`PUBLISHED_REAL_TRIALS`); the counts
    are recovered from them and checked against ``num_correct``.

    In R: ``read.csv(path)`` followed by renaming the columns as in
    :data:`PUBLISHED_PARTICIPANT_COLUMNS`.

    References
    ----------
    Stein, G. et al. (2023). Exposing flaws of generative model evaluation
    metrics and their unfair treatment of diffusion models. NeurIPS 36.

    Examples
    --------
    >>> table = read_participants("per_participant/cifar10.csv")  # doctest: +SKIP
    >>> table.groupby("model")["error_rate"].mean()  # doctest: +SKIP
    """
    aliases = _aliases(aliases)
    allowed = ("participants", "participant_table", "trials")
    if file_format is not None and file_format not in allowed:
        raise ValueError(
            f"file_format must be one of {', '.join(allowed)} (or None to detect "
            f"it), not {file_format!r}"
        )
    frames = []
    for path in _paths(paths):
        kind = file_format or detect_format(path)
        if kind == "participants":
            frames.append(_read_published_participants(path, dataset))
        elif kind == "participant_table":
            frames.append(_read_participant_table(path, dataset))
        elif kind == "trials":
            trials = read_trials(path, dataset=dataset, aliases=aliases)
            frames.append(participants_from_trials(trials))
        else:
            raise ValueError(
                f"{path} is a published per-image file: it pools guesses over "
                "participants and holds no per-participant data; use "
                "read_images() for it"
            )
    table = canonical_names(pd.concat(frames, ignore_index=True), aliases)
    _check_unique(table, ["dataset", "participant", "model"], "participant")
    return _order_participant_table(table)


def read_trials(
    paths: str | Path | Iterable[str | Path],
    *,
    dataset: str | None = None,
    aliases: Aliases | str | Path | None = None,
) -> pd.DataFrame:
    """Read and check this project's per-trial exports.

    Parameters
    ----------
    paths : path or iterable of paths
        Per-trial export files (CSV, or Parquet by the ``.parquet`` suffix).
    dataset : str, optional
        The dataset of files without a ``dataset`` column (or with it empty).
        If the column is filled in it must agree.
    aliases : Aliases or path, optional
        Alias spellings of dataset and model names.

    Returns
    -------
    pandas.DataFrame
        One row per trial with the export schema's columns that the files have
        (typed as in :data:`study_server.export_schema.TRIAL_COLUMNS`:
        ``rt_ms`` in milliseconds, booleans as pandas ``boolean``), plus
        ``dataset`` and ``correct`` always. ``response`` is ``'real'``,
        ``'generated'`` or missing (unanswered); ``correct`` is recomputed
        from ``response`` and ``is_real``.

    Raises
    ------
    ValueError
        If a required column is missing (named), a dataset is missing or
        conflicts with ``dataset``, a response, kind or boolean cell has a
        value outside the allowed ones (listed), or a ``correct`` cell
        disagrees with ``response`` and ``is_real``.
    """
    aliases = _aliases(aliases)
    frames = [_read_trial_file(path, dataset) for path in _paths(paths)]
    return canonical_names(pd.concat(frames, ignore_index=True), aliases)


def participants_from_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Summarise per-trial data into the per-participant table.

    Parameters
    ----------
    trials : pandas.DataFrame
        Trials as returned by :func:`read_trials` (possibly after
        exclusions). Only answered ``main`` trials are counted.

    Returns
    -------
    pandas.DataFrame
        The table described in :func:`read_participants`, with the
        response-time columns when ``rt_ms`` is present.

    Raises
    ------
    ValueError
        If no answered main trial is left.

    Notes
    -----
    Within designs export real trials with an empty ``model``; such a trial
    counts for every model the participant judged (a warning says so), so
    that each row's error rate is over that model's generated images and the
    participant's real images, as in a between design.
    """
    main = main_trials(trials)
    main = assign_real_trials(main)
    return _summarise_trials(main)


def main_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Return the answered main trials, with an integer ``error`` column.

    ``error`` is 1 when the response does not match the truth, else 0.

    Raises
    ------
    ValueError
        If no answered main trial is present.
    """
    main = trials[(trials["kind"] == "main") & trials["response"].notna()].copy()
    if main.empty:
        raise ValueError(
            "no answered main trials: the data holds "
            f"{len(trials)} trials of kinds "
            f"{', '.join(sorted(trials['kind'].dropna().unique())) or '(none)'}"
        )
    main["error"] = (~main["correct"].astype(bool)).astype(np.int8)
    return main


def assign_real_trials(main: pd.DataFrame) -> pd.DataFrame:
    """Give real trials without a model to each model their participant judged.

    Between designs export the session's model on every trial and are
    returned unchanged. Within designs leave ``model`` empty on real trials;
    each such trial is repeated once per model of the participant's generated
    trials, with a warning.

    Raises
    ------
    ValueError
        If a generated trial has no model, or a participant has real trials
        without a model and no generated trial to take one from.
    """
    no_model = main["model"].isna() | (main["model"] == "")
    if not no_model.any():
        return main
    if (no_model & ~main["is_real"].astype(bool)).any():
        n = int((no_model & ~main["is_real"].astype(bool)).sum())
        raise ValueError(f"{n} generated trials have no model; fill in 'model'")
    orphans = main[no_model]
    models = main.loc[~no_model, ["dataset", "participant", "model"]].drop_duplicates()
    expanded = orphans.drop(columns="model").merge(
        models, on=["dataset", "participant"], how="left"
    )
    lost = expanded["model"].isna()
    if lost.any():
        who = expanded.loc[lost, "participant"].drop_duplicates().head(5).tolist()
        raise ValueError(
            f"{int(lost.sum())} real trials have no model and their participants "
            f"(e.g. {', '.join(map(str, who))}) judged no generated image"
        )
    warnings.warn(
        f"{len(orphans)} real trials have no model (within design); each counts "
        f"for every model its participant judged ({len(expanded)} rows)",
        stacklevel=2,
    )
    return pd.concat([main[~no_model], expanded[main.columns]], ignore_index=True)


def read_images(
    paths: str | Path | Iterable[str | Path],
    *,
    dataset: str | None = None,
    aliases: Aliases | str | Path | None = None,
) -> pd.DataFrame:
    """Read published per-image CSVs (guess counts pooled over participants).

    Parameters
    ----------
    paths : path or iterable of paths
        Published per-image files (``*_labeled_data.csv``).
    dataset : str, optional
        The dataset of every file. By default the published file names map
        to the per-participant release's dataset names
        (:data:`PUBLISHED_IMAGE_FILE_DATASETS`); other files use their stem.
    aliases : Aliases or path, optional
        Alias spellings of dataset and model names.

    Returns
    -------
    pandas.DataFrame
        One row per ``(dataset, model, image, is_real)``:

        - ``dataset``, ``model``, ``image`` (str): ``image`` is the release's
          ``image_path``.
        - ``is_real`` (bool): a real image shown to that model's participants.
        - ``n_judgements`` (int): how many times it was judged.
        - ``n_judged_generated`` (int): how many times judged "generated".
        - ``soft_label`` (float, 0-1): ``n_judged_generated / n_judgements``.
        - ``n_errors`` (int): judgements that do not match the truth.
        - ``error_rate`` (float, 0-1): ``n_errors / n_judgements``.

    Raises
    ------
    ValueError
        For missing columns (named), a ``generated`` value other than 0/1,
        negative or impossible counts, or a repeated row.

    Notes
    -----
    These files say nothing about who judged what: per-participant error
    rates, their SEM, participant bootstraps, SDT per participant and mixed
    fits cannot be computed from them. Per-image soft labels and image-level
    summaries per model (pooled error rates, spread of image difficulty) can.
    """
    aliases = _aliases(aliases)
    frames = [_read_image_file(path, dataset) for path in _paths(paths)]
    table = canonical_names(pd.concat(frames, ignore_index=True), aliases)
    _check_unique(table, ["dataset", "model", "image", "is_real"], "image")
    return table.sort_values(["dataset", "model", "is_real", "image"]).reset_index(
        drop=True
    )


def canonical_names(
    frame: pd.DataFrame, aliases: Aliases | None = None
) -> pd.DataFrame:
    """Unify spellings of ``dataset`` and ``model`` that denote the same thing.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any table with ``dataset`` and ``model`` columns.
    aliases : Aliases, optional
        Extra spellings from an alias file.

    Returns
    -------
    pandas.DataFrame
        A copy in which every dataset (and every model within a dataset)
        has one spelling: the one whose normalised form is the comparison
        key (the alias file's ``name``) if present, else the first met.
        A warning lists the respelled names.
    """
    aliases = aliases or Aliases()
    frame = frame.copy()
    columns = ["dataset", "model"] if "model" in frame.columns else ["dataset"]
    # Work on the distinct names (in the order first met), then map back:
    # a per-trial export repeats each name on every row.
    missing = "\x00"
    keyed = frame[columns].astype("string").fillna(missing)
    pairs = keyed.drop_duplicates().reset_index(drop=True)
    changes: list[str] = []
    unified = pairs.copy()
    unified["dataset"] = _unify(
        pairs["dataset"], pairs["dataset"].map(aliases.dataset_key), changes
    )
    if "model" in columns:
        has_model = pairs["model"] != missing
        keys = pd.Series(
            [
                aliases.model_key(m, d)
                for d, m in zip(
                    pairs.loc[has_model, "dataset"],
                    pairs.loc[has_model, "model"],
                    strict=True,
                )
            ],
            index=pairs.index[has_model],
            dtype="string",
        )
        keys = pairs.loc[has_model, "dataset"].map(aliases.dataset_key) + "/" + keys
        unified.loc[has_model, "model"] = _unify(
            pairs.loc[has_model, "model"], keys, changes
        )
    position = pd.MultiIndex.from_frame(pairs).get_indexer(
        pd.MultiIndex.from_frame(keyed)
    )
    for column in columns:
        values = unified[column].to_numpy()[position]
        frame[column] = pd.Series(values, index=frame.index, dtype="string").replace(
            missing, pd.NA
        )
    if changes:
        warnings.warn(
            "names respelled to match across sources: " + "; ".join(changes),
            stacklevel=2,
        )
    return frame


def _unify(names: pd.Series, keys: pd.Series, changes: list[str]) -> pd.Series:
    spelling: dict[str, str] = {}
    for name, key in zip(names, keys, strict=True):
        if pd.isna(name):
            continue
        canonical = key.rsplit("/", 1)[-1]
        current = spelling.get(key)
        if current is None or (
            normalize_name(current) != canonical and normalize_name(name) == canonical
        ):
            spelling[key] = name
    mapped = keys.map(spelling).where(names.notna(), names)
    for old, new in (
        pd.DataFrame({"old": names, "new": mapped}).dropna().drop_duplicates().values
    ):
        if old != new:
            changes.append(f"{old!r} -> {new!r}")
    return mapped.astype("string")


def _aliases(aliases: Aliases | str | Path | None) -> Aliases:
    if isinstance(aliases, Aliases):
        return aliases
    return Aliases.from_file(aliases)


def _paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, str | Path):
        paths = [paths]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("no input files given")
    return out


def _header(path: Path) -> list[str]:
    try:
        if path.suffix == ".parquet":
            return list(pd.read_parquet(path).columns)
        return list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, ImportError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _require(frame: pd.DataFrame, columns: Sequence[str], path: Path, what: str):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {', '.join(missing)} needed for {what}; "
            f"it has: {', '.join(map(str, frame.columns))}"
        )


def _row(path: Path, position: int) -> str:
    """Where row ``position`` (0-based, after the header) of a file lies."""
    if path.suffix == ".parquet":
        return f"row {position + 1}"
    return f"row {position + 1} (line {position + 2} of the file)"


def _numeric(
    frame: pd.DataFrame, column: str, path: Path, *, required: bool = False
) -> pd.Series:
    """A column as floats, or an error naming the file, column, value and row.

    Empty cells become NaN, or are an error too when ``required``.
    """
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype("string").str.strip()
    empty = values.isna() | (text == "").fillna(True)
    bad = (numbers.isna() & ~empty).to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: column {column!r} must be numeric; found "
            f"{values.iloc[position]!r} in {_row(path, position)}"
        )
    if required and empty.any():
        position = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(
            f"{path}: column {column!r} must be filled in; it is empty in "
            f"{_row(path, position)}"
        )
    return numbers.astype(float)


def _first_bad(
    values: pd.Series, bad: pd.Series, column: str, path: Path, allowed: str
) -> None:
    """Raise naming the first value of ``values`` where ``bad`` holds."""
    flags = bad.to_numpy(dtype=bool)
    if flags.any():
        position = int(np.flatnonzero(flags)[0])
        value = values.iloc[position]
        if isinstance(value, np.generic):
            value = value.item()
        more = int(flags.sum()) - 1
        raise ValueError(
            f"{path}: column {column!r} must be {allowed}; found {value!r} in "
            f"{_row(path, position)}"
            + (f", and {more} more row(s) like it" if more else "")
        )


def _set_dataset(
    frame: pd.DataFrame, dataset: str | None, default: str | None, path: Path
) -> pd.DataFrame:
    """Fill in ``dataset`` from the argument, the file, or the file name."""
    frame = frame.copy()
    column = frame["dataset"] if "dataset" in frame.columns else None
    if column is not None:
        column = column.astype("string").str.strip().replace("", pd.NA)
    if column is not None and column.notna().any():
        if column.isna().any():
            raise ValueError(
                f"{path}: {int(column.isna().sum())} rows have an empty 'dataset'"
            )
        if dataset is not None:
            found = {normalize_name(d) for d in column.unique()}
            if found != {normalize_name(dataset)}:
                raise ValueError(
                    f"{path}: --dataset {dataset!r} conflicts with the file's "
                    f"dataset column ({', '.join(sorted(column.unique()))})"
                )
        frame["dataset"] = column
        return frame
    name = dataset if dataset is not None else default
    if name is None:
        raise ValueError(
            f"{path} has no dataset column; give the dataset (--dataset) or add "
            "a 'dataset' column"
        )
    frame["dataset"] = pd.Series(name, index=frame.index, dtype="string")
    return frame


def _read_published_participants(path: Path, dataset: str | None) -> pd.DataFrame:
    raw = _read_csv(path)
    _require(raw, list(PUBLISHED_PARTICIPANT_COLUMNS), path, "a per-participant file")
    if raw.empty:
        raise ValueError(f"{path} has no rows")
    rate_columns = ("err_rt", "f_err_rt", "r_err_rt", "r_ans_rt")
    for column in ("num_correct", *rate_columns):
        raw[column] = _numeric(raw, column, path, required=True)
        if column in rate_columns:
            rate = raw[column]
            _first_bad(rate, (rate < 0) | (rate > 1), column, path, "a rate in [0, 1]")
    for column in ("resp_time", "f_resp_time", "r_resp_time"):
        raw[column] = _numeric(raw, column, path)
    table = raw.rename(columns=PUBLISHED_PARTICIPANT_COLUMNS)
    table = _set_dataset(table, dataset, path.stem, path)
    if "dataset" not in raw.columns and raw["id"].duplicated().any():
        ids = raw.loc[raw["id"].duplicated(), "id"].head(3).tolist()
        raise ValueError(
            f"{path}: participant ids repeat ({', '.join(map(str, ids))}); the file "
            "seems to mix datasets without a dataset column; add one or split it"
        )
    n_fake, n_real = PUBLISHED_FAKE_TRIALS, PUBLISHED_REAL_TRIALS
    fake_errors = table["fake_error_rate"] * n_fake
    real_errors = table["real_error_rate"] * n_real
    n_correct = table["n_correct"].astype(float)
    # The rates are stored as floats such as 0.08999999999999997; the counts
    # they come from must be whole and agree with num_correct.
    whole = np.isclose(fake_errors, fake_errors.round(), atol=1e-6) & np.isclose(
        real_errors, real_errors.round(), atol=1e-6
    )
    agree = np.isclose(n_correct, n_fake + n_real - fake_errors - real_errors)
    if not (whole & agree).all():
        bad = table.loc[~(whole & agree), "participant"].head(3).tolist()
        raise ValueError(
            f"{path}: num_correct, f_err_rt and r_err_rt do not describe "
            f"{n_fake} generated and {n_real} real trials for participant(s) "
            f"{', '.join(map(str, bad))}"
        )
    table["participant"] = table["participant"].astype("string")
    table["model"] = table["model"].astype("string")
    table["n_fake_trials"] = n_fake
    table["n_real_trials"] = n_real
    table["n_trials"] = n_fake + n_real
    table["n_correct"] = n_correct.round().astype(int)
    return table


def _read_participant_table(path: Path, dataset: str | None) -> pd.DataFrame:
    table = _read_csv(path)
    _require(table, PARTICIPANT_TABLE_COLUMNS[1:], path, "a participant table")
    table = _set_dataset(table, dataset, None, path)
    for column in ("participant", "model"):
        table[column] = table[column].astype("string")
    return table


def _read_trial_file(path: Path, dataset: str | None) -> pd.DataFrame:
    raw = _read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    _require(raw, TRIAL_REQUIRED, path, "a per-trial export")
    if raw.empty:
        raise ValueError(f"{path} has no rows")
    frame = _set_dataset(raw, dataset, None, path)
    types = schema_dtypes(TRIAL_COLUMNS)
    for column in frame.columns:
        kind = types.get(column)
        if kind == "boolean":
            frame[column] = _parse_bool(frame[column], column, path)
        elif kind in ("Int64", "Float64"):
            numbers = _numeric(frame, column, path)
            if kind == "Int64":
                fraction = numbers.notna() & (numbers != numbers.round())
                _first_bad(frame[column], fraction, column, path, "a whole number")
            frame[column] = numbers.astype(kind)
        elif kind == "string" or column not in types:
            frame[column] = frame[column].astype("string").str.strip()
    frame["response"] = frame["response"].str.lower().replace("", pd.NA)
    frame["kind"] = frame["kind"].str.lower()
    _check_allowed(frame["response"], RESPONSES, "response", path)
    _check_allowed(frame["kind"], TRIAL_KINDS, "kind", path)
    if frame["is_real"].isna().any():
        raise ValueError(f"{path}: 'is_real' is empty on some trials")
    if frame["participant"].isna().any():
        raise ValueError(f"{path}: 'participant' is empty on some trials")
    frame["model"] = frame["model"].replace("", pd.NA)
    truth = frame["is_real"].map({True: "real", False: "generated"}).astype("string")
    correct = (frame["response"] == truth).astype("boolean")
    if "correct" in frame.columns:
        stored = frame["correct"]
        clash = stored.notna() & correct.notna() & (stored != correct)
        if clash.any():
            raise ValueError(
                f"{path}: 'correct' disagrees with 'response' and 'is_real' on "
                f"{int(clash.sum())} trials"
            )
    frame["correct"] = correct
    ordered = [c for c in schema_names(TRIAL_COLUMNS) if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def _parse_bool(values: pd.Series, column: str, path: Path) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[text.isin(_TRUE).fillna(False)] = True
    parsed[text.isin(_FALSE).fillna(False)] = False
    bad = text.notna() & parsed.isna()
    if bad.any():
        raise ValueError(
            f"{path}: column {column!r} must be true/false (or 1/0, empty for "
            f"missing); found {text[bad].iloc[0]!r}"
        )
    return parsed


def _check_allowed(values: pd.Series, allowed: Sequence[str], column: str, path):
    bad = values.notna() & ~values.isin(allowed)
    if bad.any():
        found = sorted(values[bad].unique())[:5]
        raise ValueError(
            f"{path}: column {column!r} holds {', '.join(map(repr, found))}; "
            f"allowed: {', '.join(allowed)} (or empty)"
        )


def _summarise_trials(main: pd.DataFrame) -> pd.DataFrame:
    main = main.assign(
        is_real=main["is_real"].astype(bool),
        answered_real=(main["response"] == "real").astype(np.int8),
    )
    main["fake_error"] = main["error"].where(~main["is_real"], 0)
    main["real_error"] = main["error"].where(main["is_real"], 0)
    keys = ["dataset", "participant", "model"]
    grouped = main.groupby(keys, sort=True, observed=True)
    table = grouped.agg(
        n_trials=("error", "size"),
        n_errors=("error", "sum"),
        n_real_trials=("is_real", "sum"),
        n_fake_errors=("fake_error", "sum"),
        n_real_errors=("real_error", "sum"),
        n_answered_real=("answered_real", "sum"),
    ).reset_index()
    table["n_fake_trials"] = table["n_trials"] - table["n_real_trials"]
    table["n_correct"] = table["n_trials"] - table["n_errors"]
    table["error_rate"] = table["n_errors"] / table["n_trials"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["fake_error_rate"] = table["n_fake_errors"] / table["n_fake_trials"]
        table["real_error_rate"] = table["n_real_errors"] / table["n_real_trials"]
    table["answered_real_rate"] = table["n_answered_real"] / table["n_trials"]
    if "rt_ms" in main.columns and main["rt_ms"].notna().any():
        rt_s = main["rt_ms"].astype(float) / 1000.0
        sums = (
            main.assign(
                rt_total_s=rt_s,
                fake_rt_total_s=rt_s.where(~main["is_real"], 0.0),
                real_rt_total_s=rt_s.where(main["is_real"], 0.0),
                rt_median_ms=main["rt_ms"].astype(float),
            )
            .groupby(keys, sort=True, observed=True)
            .agg(
                rt_total_s=("rt_total_s", "sum"),
                fake_rt_total_s=("fake_rt_total_s", "sum"),
                real_rt_total_s=("real_rt_total_s", "sum"),
                rt_median_ms=("rt_median_ms", "median"),
            )
            .reset_index()
        )
        table = table.merge(sums, on=keys, how="left")
    return _order_participant_table(table)


def _order_participant_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = list(PARTICIPANT_TABLE_COLUMNS) + [
        c for c in RT_COLUMNS if c in table.columns
    ]
    table = table[columns].copy()
    for column in ("n_trials", "n_correct", "n_fake_trials", "n_real_trials"):
        table[column] = table[column].astype(int)
    for column in ("dataset", "participant", "model"):
        table[column] = table[column].astype("string")
    # A stable sort keeps the files' participant order within a model.
    return table.sort_values(["dataset", "model"], kind="stable").reset_index(drop=True)


def _read_image_file(path: Path, dataset: str | None) -> pd.DataFrame:
    raw = _read_csv(path)
    _require(raw, list(PUBLISHED_IMAGE_COLUMNS), path, "a per-image file")
    if raw.empty:
        raise ValueError(f"{path} has no rows")
    table = raw[list(PUBLISHED_IMAGE_COLUMNS)].rename(columns=PUBLISHED_IMAGE_COLUMNS)
    if "dataset" in raw.columns:
        table["dataset"] = raw["dataset"]
    default = PUBLISHED_IMAGE_FILE_DATASETS.get(path.stem, path.stem)
    table = _set_dataset(table, dataset, default, path)
    generated = _numeric(raw, "generated", path, required=True)
    _first_bad(raw["generated"], ~generated.isin([0, 1]), "generated", path, "0 or 1")
    n = _numeric(raw, "number_guesses", path, required=True)
    n_gen = _numeric(raw, "number_guesses_generated", path, required=True)
    for column, counts, least in (
        ("number_guesses", n, 1),
        ("number_guesses_generated", n_gen, 0),
    ):
        bad = (counts < least) | (counts != counts.round())
        _first_bad(raw[column], bad, column, path, f"a whole number, at least {least}")
    _first_bad(
        raw["number_guesses_generated"],
        n_gen > n,
        "number_guesses_generated",
        path,
        "at most number_guesses",
    )
    table["is_real"] = generated == 0
    table["n_judgements"] = n.astype(int)
    table["n_judged_generated"] = n_gen.astype(int)
    table["soft_label"] = table["n_judged_generated"] / table["n_judgements"]
    table["n_errors"] = np.where(
        table["is_real"],
        table["n_judged_generated"],
        table["n_judgements"] - table["n_judged_generated"],
    )
    table["error_rate"] = table["n_errors"] / table["n_judgements"]
    for column in ("model", "image"):
        table[column] = table[column].astype("string")
    return table[list(IMAGE_TABLE_COLUMNS)]


def _check_unique(table: pd.DataFrame, keys: list[str], what: str) -> None:
    repeated = table.duplicated(keys, keep=False)
    if repeated.any():
        example = table.loc[repeated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{int(repeated.sum())} rows repeat a {what} "
            f"({', '.join(keys)}), e.g. {example}; ids must be unique within a "
            "dataset (was a file given twice, or two files given one --dataset?)"
        )


def images_from_trials(main: pd.DataFrame) -> pd.DataFrame:
    """Per-image judgement counts from per-trial data.

    Parameters
    ----------
    main : pandas.DataFrame
        Answered main trials (:func:`main_trials`, after exclusions). Real
        trials without a model (within designs) give rows with an empty
        ``model``.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`read_images` (``image`` is the ``stimulus`` id),
        one row per ``(dataset, model, image, is_real)``.
    """
    frame = main.assign(
        is_real=main["is_real"].astype(bool),
        judged_generated=(main["response"] == "generated").astype(int),
    )
    # dropna=False keeps real images of within designs, which have no model.
    grouped = frame.groupby(
        ["dataset", "model", "stimulus", "is_real"],
        sort=True,
        observed=True,
        dropna=False,
    )
    table = grouped.agg(
        n_judgements=("judged_generated", "size"),
        n_judged_generated=("judged_generated", "sum"),
        n_errors=("error", "sum"),
    ).reset_index()
    table = table.rename(columns={"stimulus": "image"})
    table["soft_label"] = table["n_judged_generated"] / table["n_judgements"]
    table["error_rate"] = table["n_errors"] / table["n_judgements"]
    return table[list(IMAGE_TABLE_COLUMNS)]


def unify_names(
    frames: Sequence[pd.DataFrame], aliases: Aliases | None = None
) -> list[pd.DataFrame]:
    """Give the same dataset and model one spelling across several tables.

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        Tables with ``dataset`` and (optionally empty) ``model`` columns, in
        order of preference for the spelling kept.
    aliases : Aliases, optional
        Extra spellings from an alias file.

    Returns
    -------
    list of pandas.DataFrame
        Copies with respelled ``dataset`` and ``model`` (see
        :func:`canonical_names`, which warns about every respelling).
    """
    missing = "\x00"

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["dataset", "model"]].astype("string").fillna(missing)

    names = pd.concat(
        [keyed(f).drop_duplicates() for f in frames], ignore_index=True
    ).drop_duplicates(ignore_index=True)
    unified = canonical_names(names.replace(missing, pd.NA), aliases)
    unified = unified.astype("string").fillna(missing)
    lookup = pd.MultiIndex.from_frame(names)
    out = []
    for frame in frames:
        position = lookup.get_indexer(pd.MultiIndex.from_frame(keyed(frame)))
        frame = frame.copy()
        for column in ("dataset", "model"):
            values = unified[column].to_numpy()[position]
            frame[column] = pd.Series(
                values, index=frame.index, dtype="string"
            ).replace(missing, pd.NA)
        out.append(frame)
    return out
