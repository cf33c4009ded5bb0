"""``analysis fit``: from responses to per-model human scores."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pandas as pd

from analysis.exclude import ExclusionRules, apply_exclusions, no_exclusions
from analysis.names import Aliases, NameMatchError
from analysis.readers import (
    FORMATS,
    assign_real_trials,
    detect_format,
    images_from_trials,
    main_trials,
    participants_from_trials,
    read_images,
    read_participants,
    read_trials,
    unify_names,
)
from analysis.scores import (
    HUMAN_SCORE_COLUMNS,
    IMAGE_SCORE_COLUMNS,
    human_scores,
    image_summary,
)
from analysis.sdt import participant_sdt
from stimuli.folders import output_folder

OUTPUT_TABLES = (
    "human_scores",
    "participants",
    "exclusions",
    "images",
    "image_scores",
    "mixed_fit",
    "rt_histogram",
)

# Tables written into the --json document; the long ones (participants,
# images, rt_histogram) are only named under "files".
JSON_TABLES = ("human_scores", "exclusions", "image_scores", "mixed_fit")

# Response-time histogram bins (ms): 100 ms wide up to 5 s, then one open bin.
RT_BIN_EDGES_MS = np.r_[np.arange(0.0, 5001.0, 100.0), np.inf]


def _epilog() -> str:
    lines = [
        "Outputs in --out DIR:",
        "",
        "\b",
        "  human_scores.csv   one row per (dataset, model), columns below",
        "  participants.csv   one row per participant (after exclusions), with",
        "                     d_prime and criterion",
        "  exclusions.csv     dataset, reason, level, rule, applied,",
        "                     n_participants, n_trials",
        "  images.csv         per-image judgement counts and soft labels",
        "                     (per-trial or per-image input)",
        "  image_scores.csv   per-model summaries of images.csv",
        "  mixed_fit.csv      fixed effects and variance components (--mixed)",
        "  rt_histogram.csv   response times per model, 100 ms bins (per-trial)",
        "  fit.json           settings, inputs, warnings and row counts",
        "",
        "Columns of human_scores.csv (name [unit]: meaning):",
        "",
        "\b",
    ]
    for name, unit, meaning in HUMAN_SCORE_COLUMNS:
        lines += textwrap.wrap(
            f"{name} [{unit}]: {meaning}",
            width=78,
            initial_indent="  ",
            subsequent_indent="      ",
        )
    lines += [
        "",
        "Proportions are between 0 and 1. Intervals: a binomial GLM with "
        "two-way cluster-robust errors (participant, image) for per-trial data; "
        "a seeded participant bootstrap for per-participant data; never a "
        "pooled-trial Wilson interval. A model with one participant or one image "
        "has no interval (empty, with a warning). The mixed fit's posterior SDs "
        "(variational Bayes) are far smaller than lme4's standard errors and "
        "are not intervals.",
    ]
    return "\n".join(lines)


@dataclass
class Inputs:
    """The input files sorted by format."""

    trials: list[Path] = field(default_factory=list)
    participants: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    # With --format, the per-participant files are read as that format.
    participant_format: str | None = None


@click.command(epilog=_epilog())
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    help="Folder for the output tables (created if needed).",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(("auto", *FORMATS)),
    default="auto",
    show_default=True,
    help="Format of every input file: trials (this project's per-trial export), "
    "participants (published per-participant CSV), images (published per-image "
    "CSV), participant_table (participants.csv of an earlier fit); auto detects "
    "it per file from the columns.",
)
@click.option(
    "--dataset",
    default=None,
    help="Dataset of inputs without a dataset column (by default a published "
    "file's name stem).",
)
@click.option(
    "--alias",
    "alias_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Alias CSV (kind,dataset,name,alias) for dataset and model names.",
)
@click.option(
    "--max-failed-checks",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Exclude participants who failed more attention checks than this.",
)
@click.option(
    "--min-median-rt-ms",
    type=click.FloatRange(min=0),
    default=200.0,
    show_default=True,
    help="Exclude participants whose median response time is below this "
    "(ms); 0 switches the rule off.",
)
@click.option(
    "--drop-timing-invalid/--keep-timing-invalid",
    default=True,
    show_default=True,
    help="Drop trials whose achieved exposure differed from the intended one.",
)
@click.option(
    "--keep-incomplete",
    is_flag=True,
    help="Keep the answered trials of sessions that did not complete.",
)
@click.option(
    "--mixed/--no-mixed",
    default=False,
    show_default=True,
    help="Also fit correct ~ model + (1|participant) + (1|image) per dataset "
    "(needs per-trial data; minutes at the published scale).",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Coverage of the reported intervals.",
)
@click.option(
    "--n-boot",
    type=click.IntRange(min=100),
    default=10_000,
    show_default=True,
    help="Bootstrap resamples (per-participant data).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the bootstrap and of the mixed fit's starting values.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write a JSON document to stdout (messages go to stderr): settings, "
    "warnings, output files, and the rows of human_scores, exclusions, "
    "image_scores and mixed_fit.",
)
def fit(
    inputs: tuple[str, ...],
    out_dir: str,
    input_format: str,
    dataset: str | None,
    alias_file: str | None,
    max_failed_checks: int,
    min_median_rt_ms: float,
    drop_timing_invalid: bool,
    keep_incomplete: bool,
    mixed: bool,
    confidence: float,
    n_boot: int,
    seed: int,
    as_json: bool,
) -> None:
    """Apply exclusions and compute per-model human scores.

    INPUTS are per-trial exports, published per-participant CSVs and/or
    published per-image CSVs (the format is detected from the columns).
    Every exclusion is counted in exclusions.csv and reported as a warning.
    """
    rules = ExclusionRules(
        max_failed_checks=max_failed_checks,
        min_median_rt_ms=min_median_rt_ms,
        drop_timing_invalid=drop_timing_invalid,
        keep_incomplete=keep_incomplete,
    )
    try:
        aliases = Aliases.from_file(alias_file)
    except NameMatchError as exc:
        raise click.BadParameter(str(exc), param_hint="--alias") from exc
    files = _sort_inputs(inputs, input_format)
    if mixed and not files.trials:
        raise click.UsageError(
            "--mixed needs per-trial data (a per-trial export); the inputs are "
            "per-participant or per-image files"
        )
    out = Path(out_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tables = _analyse(
                files, dataset, aliases, rules, mixed, confidence, n_boot, seed
            )
        except (ValueError, NameMatchError) as exc:
            _echo_warnings(caught)
            raise click.ClickException(str(exc)) from exc
    messages = [str(w.message) for w in caught]
    _echo_warnings(caught)
    written = _write(out, tables)
    settings = {
        "inputs": [str(p) for p in inputs],
        "format": input_format,
        "dataset": dataset,
        "alias": alias_file,
        "exclusion_rules": rules.as_dict(),
        "mixed": mixed,
        "confidence": confidence,
        "n_boot": n_boot,
        "seed": seed,
    }
    info = {
        "settings": settings,
        "warnings": messages,
        "files": {name: str(path) for name, path in written.items()},
        "rows": {name: len(table) for name, table in tables.items()},
    }
    (out / "fit.json").write_text(json.dumps(info, indent=2) + "\n")
    if as_json:
        summaries = {n: _records(t) for n, t in tables.items() if n in JSON_TABLES}
        document = {**info, **summaries}
        click.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        _echo_summary(tables, out)


def _sort_inputs(inputs: tuple[str, ...], input_format: str) -> Inputs:
    files = Inputs()
    if input_format in ("participants", "participant_table"):
        files.participant_format = input_format
    for name in inputs:
        path = Path(name)
        try:
            kind = detect_format(path) if input_format == "auto" else input_format
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="INPUTS") from exc
        if kind == "images":
            files.images.append(path)
        elif kind == "trials":
            files.trials.append(path)
        else:
            files.participants.append(path)
    return files


def _analyse(files, dataset, aliases, rules, mixed, confidence, n_boot, seed):
    """Read, exclude, score; return the output tables by name."""
    # Frames by role; their dataset and model names are unified together.
    frames: dict[str, pd.DataFrame] = {}
    exclusion_tables = []
    if files.trials:
        trials = read_trials(files.trials, dataset=dataset, aliases=aliases)
        before = trials.loc[trials["kind"] == "main", ["dataset", "model"]]
        excluded = apply_exclusions(trials, rules)
        exclusion_tables.append(excluded.table)
        _check_left(excluded)
        # One row per answered main trial; within designs leave real trials
        # without a model. ``main`` repeats those for each of the
        # participant's models, as the per-model scores need.
        frames["answered"] = main_trials(excluded.trials)
        frames["main"] = assign_real_trials(frames["answered"])
        _warn_lost_models(before, frames["main"])
        frames["from_trials"] = participants_from_trials(frames["main"])
    if files.participants:
        frames["from_files"] = read_participants(
            files.participants,
            dataset=dataset,
            aliases=aliases,
            file_format=files.participant_format,
        )
    if files.images:
        frames["images"] = read_images(files.images, dataset=dataset, aliases=aliases)
    frames = dict(zip(frames, unify_names(list(frames.values()), aliases), strict=True))
    main = frames.get("main")

    tables: dict[str, pd.DataFrame] = {}
    people = [frames[k] for k in ("from_trials", "from_files") if k in frames]
    if people:
        _check_disjoint(frames.get("from_trials"), frames.get("from_files"))
        participants = participant_sdt(pd.concat(people, ignore_index=True))
        if "from_files" in frames:
            datasets = sorted(frames["from_files"]["dataset"].unique())
            exclusion_tables.append(no_exclusions(datasets, rules))
        mixed_models = None
        if mixed:
            from analysis.mixed import mixed_fit

            # Real trials of a within design have no model: they enter the
            # fit once, as their own level, instead of once per model.
            answered = frames["answered"]
            result = mixed_fit(
                answered.assign(model=answered["model"].fillna("real")), seed=seed
            )
            mixed_models = result.models
            tables["mixed_fit"] = _mixed_table(result)
        tables["human_scores"] = human_scores(
            participants,
            main,
            mixed=mixed_models,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
        )
        tables["participants"] = participants
        tables["exclusions"] = pd.concat(exclusion_tables, ignore_index=True)
    else:
        warnings.warn(
            "only per-image input: human_scores.csv needs per-participant or "
            "per-trial data; writing the per-image tables only",
            stacklevel=2,
        )
    image_tables = []
    if "answered" in frames:
        image_tables.append(images_from_trials(frames["answered"]))
    if "images" in frames:
        image_tables.append(frames["images"])
    if image_tables:
        tables["images"] = pd.concat(image_tables, ignore_index=True)
        tables["image_scores"] = image_summary(tables["images"])
    if main is not None and "rt_ms" in main.columns and main["rt_ms"].notna().any():
        tables["rt_histogram"] = rt_histogram(main)
    return tables


def rt_histogram(main: pd.DataFrame) -> pd.DataFrame:
    """Counts of response times per model and image kind in 100 ms bins.

    Returns one row per ``(dataset, model, is_real, bin)`` with
    ``bin_low_ms``, ``bin_high_ms`` (ms; the last bin is open, ``inf``) and
    ``n_trials``; empty bins are left out.
    """
    frame = main[main["rt_ms"].notna()]
    bins = np.searchsorted(RT_BIN_EDGES_MS, frame["rt_ms"].astype(float), "right") - 1
    counts = (
        frame.assign(bin=np.clip(bins, 0, len(RT_BIN_EDGES_MS) - 2))
        .groupby(["dataset", "model", "is_real", "bin"], observed=True)
        .size()
        .rename("n_trials")
        .reset_index()
    )
    counts["bin_low_ms"] = RT_BIN_EDGES_MS[counts["bin"]]
    counts["bin_high_ms"] = RT_BIN_EDGES_MS[counts["bin"] + 1]
    return counts[
        ["dataset", "model", "is_real", "bin_low_ms", "bin_high_ms", "n_trials"]
    ]


def _mixed_table(result) -> pd.DataFrame:
    fixed = result.fixed.assign(kind="fixed")
    variance = result.variance.rename(
        columns={"component": "term", "sd": "estimate", "log_sd_sd_vb": "sd_vb"}
    ).assign(kind="random_sd")
    variance["term"] = "sd(" + variance["term"] + ")"
    columns = ["dataset", "kind", "term", "estimate", "sd_vb"]
    return pd.concat([fixed[columns], variance[columns]], ignore_index=True)


def _check_left(excluded) -> None:
    left = excluded.trials
    if ((left["kind"] == "main") & left["response"].notna()).any():
        return
    table = excluded.table
    dropped = table[table["n_trials"] > 0]
    reasons = ", ".join(
        f"{r.reason} ({r.n_participants} participants)" for r in dropped.itertuples()
    )
    raise ValueError(
        "no answered main trials left after exclusions"
        + (f"; dropped: {reasons}" if reasons else "")
        + ". Relax the rules (--keep-incomplete, --max-failed-checks, "
        "--min-median-rt-ms, --keep-timing-invalid) or check the input"
    )


def _check_disjoint(from_trials, from_files) -> None:
    if from_trials is None or from_files is None:
        return
    both = sorted(set(from_trials["dataset"]) & set(from_files["dataset"]))
    if both:
        raise ValueError(
            f"dataset(s) {', '.join(both)} come both from per-trial exports and "
            "from per-participant files; give one source per dataset"
        )


def _warn_lost_models(before: pd.DataFrame, main: pd.DataFrame) -> None:
    had = set(map(tuple, before.dropna().drop_duplicates().to_numpy()))
    kept = set(map(tuple, main[["dataset", "model"]].drop_duplicates().to_numpy()))
    lost = sorted(had - kept)
    if lost:
        warnings.warn(
            "no participants left after exclusions for: "
            + ", ".join(f"{d}/{m}" for d, m in lost)
            + "; these models are left out",
            stacklevel=3,
        )


def _write(out: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    output_folder(out)
    # Outputs of an earlier fit into the same folder that this run does not
    # produce (say mixed_fit.csv without --mixed) would be read by the report
    # as if they belonged to this fit.
    for name in OUTPUT_TABLES:
        stale = out / f"{name}.csv"
        if name not in tables and stale.is_file():
            stale.unlink()
    written = {}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        table.to_csv(path, index=False)
        written[name] = path
    return written


def _records(table: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts: NaN and NA become null, numpy scalars plain."""
    rows = []
    for row in table.to_dict(orient="records"):
        clean: dict[str, object] = {}
        for key, value in row.items():
            if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                clean[key] = None
            elif isinstance(value, float) and math.isinf(value):
                clean[key] = "inf" if value > 0 else "-inf"
            elif isinstance(value, np.generic):
                clean[key] = value.item()
            else:
                clean[key] = value
        rows.append(clean)
    return rows


def _echo_warnings(caught) -> None:
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)


def _echo_summary(tables: dict[str, pd.DataFrame], out: Path) -> None:
    if "human_scores" in tables:
        scores = tables["human_scores"]
        shown = scores[
            ["dataset", "model", "n_participants", "error_rate", "ci_low", "ci_high"]
        ]
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "image_scores" in tables:
        click.echo(
            f"{len(tables['image_scores'])} models with per-image summaries "
            f"(columns: {', '.join(c for c, _, _ in IMAGE_SCORE_COLUMNS[2:])})"
        )
    click.echo(f"Wrote {', '.join(f'{n}.csv' for n in tables)} and fit.json to {out}")
