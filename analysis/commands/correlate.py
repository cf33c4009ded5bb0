"""``analysis correlate``: which metric agrees with people?"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import click
import pandas as pd

from analysis.bootstrap import METHODS, check_methods
from analysis.names import Aliases, NameMatchError
from stimuli.folders import output_folder_for_run

# Columns echoed to the terminal; the CSV files hold all of them.
SHOWN = (
    "dataset",
    "label",
    "method",
    "n_models",
    "coefficient",
    "ci_low",
    "ci_high",
    "agreement",
    "p_val",
    "p_val_bh",
)


def _methods(ctx: click.Context, param: click.Parameter, value: str) -> tuple:
    try:
        return check_methods(value.split(","))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _directions(ctx: click.Context, param: click.Parameter, value: tuple) -> dict:
    from analysis.correlate import parse_directions

    try:
        return parse_directions(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.command()
@click.argument("human", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("metrics", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--alias",
    "alias_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Alias CSV (kind,dataset,name,alias) for names that differ between "
    "HUMAN and METRICS beyond case and punctuation.",
)
@click.option(
    "--score",
    default="error_rate",
    show_default=True,
    help="Human score column: error_rate, fake_error_rate, real_error_rate, "
    "answered_real_rate, or another numeric column of HUMAN.",
)
@click.option(
    "--score-direction",
    type=click.Choice(["higher", "lower"]),
    help="Whether a higher --score means a more realistic model; needed only "
    "for scores without a known direction.",
)
@click.option(
    "--method",
    "methods",
    default=",".join(METHODS),
    show_default=True,
    callback=_methods,
    help="Comma-separated correlation methods: spearman, kendall (tau-b), pearson.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=0),
    default=9999,
    show_default=True,
    help="Bootstrap resamples (0: no intervals and no comparisons).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the bootstrap; the same seed gives the same result.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Level of the percentile intervals.",
)
@click.option(
    "--encoder",
    help="Encoder of a METRICS table without an encoder column, such as the "
    "published leaderboard: e.g. dinov2_vitl14 (default: unknown).",
)
@click.option(
    "--dataset",
    help="Dataset of HUMAN files that name none (a published per-participant "
    "file's default is its file-name stem).",
)
@click.option(
    "--direction",
    "directions",
    multiple=True,
    callback=_directions,
    metavar="METRIC=higher|lower|none",
    help="Which end of a metric is better; repeatable; overrides the built-in table.",
)
@click.option(
    "--compare",
    type=click.Choice(["signed", "abs"]),
    default="signed",
    show_default=True,
    help="Paired comparison of metrics by signed agreement, or by |coefficient|.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for correlations.csv, comparisons.csv, unmatched.csv, "
    "matched.csv and report.html.",
)
def correlate(
    human: tuple[str, ...],
    metrics: str,
    alias_file: str | None,
    score: str,
    score_direction: str | None,
    methods: tuple[str, ...],
    n_boot: int,
    seed: int,
    confidence: float,
    encoder: str | None,
    dataset: str | None,
    directions: dict[str, str],
    compare: str,
    out: Path | None,
) -> None:
    """Correlate human scores with metric tables, per dataset and metric.

    HUMAN is human_scores.csv from `analysis fit`, or per-participant data
    (the published per-participant CSVs, per-trial exports, per-participant
    tables; several files allowed). METRICS is a tidy metric table from
    `analysis metrics` or a wide one with a column per metric, such as the
    published DINOv2 leaderboard. Models are matched by name, ignoring case
    and punctuation, then through --alias; unmatched names are listed.

    \b
    Sign convention. `coefficient` is the raw correlation of the human
    score with the metric. Each metric has a direction: lower is better
    for FD, FD_inf, KD (and FID, KID, sFID, FLS_POG); higher is better for
    precision, recall, density, coverage, AuthPct, FLS, IS, Vendi; none
    for C_T (0 is ideal). A higher human error rate means a more realistic
    model. `agreement` = sign x coefficient, sign = +1 when the metric's
    better end and the more realistic end go together: positive agreement
    means the metric ranks models as people do (a lower FD with a higher
    error rate). Metrics with direction none have no agreement.

    \b
    Statistics. Intervals are percentile bootstrap intervals: models are
    resampled, and with per-participant data participants are resampled
    within each drawn model (two levels). Near +-1 that extra participant
    noise pulls resampled coefficients toward 0, so an interval can miss
    its estimate; a note says so. p_val is scipy's two-sided test of the
    point estimate (spearmanr, kendalltau, pearsonr; named in
    p_val_method) and p_val_bh its Benjamini-Hochberg adjustment across
    the metrics of a dataset and method. comparisons.csv tests, on the
    same resamples, whether one metric agrees with people better than
    another (bootstrap p-value, BH-adjusted across pairs).

    \b
    Exit status: 0 on success; 1 when the input cannot be read, or when a
    dataset (or metric) has fewer than 3 matched models (the others are
    still computed and written); 2 for bad options.
    """
    from analysis import correlate as corr

    # Made before the inputs are read, removed again if they cannot be.
    folder = output_folder_for_run(out) if out is not None else nullcontext()
    with folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(
            corr,
            human,
            metrics,
            alias_file,
            dataset=dataset,
            encoder=encoder,
            score=score,
            score_dir=score_direction,
            methods=methods,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
            directions=directions,
            compare=compare,
        )
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    for message in result.messages:
        click.echo(f"note: {message}", err=True)
    for message in result.errors:
        click.echo(f"error: {message}", err=True)

    _echo_table(result.correlations)
    click.echo(
        f"{len(result.matched)} models matched; {len(result.unmatched)} names unmatched"
    )
    if out is not None:
        try:
            paths = corr.write_outputs(result, out)
        except OSError as exc:
            raise click.ClickException(f"cannot write into {out}: {exc}") from None
        for path in paths.values():
            click.echo(f"wrote {path}")
    if result.errors:
        raise click.exceptions.Exit(1)


def _run(corr, human, metrics, alias_file, *, dataset, encoder, **options):
    try:
        aliases = Aliases.from_file(alias_file)
        human_data = corr.read_human(list(human), dataset=dataset, aliases=aliases)
        table = corr.read_metric_table(metrics, encoder=encoder)
    except NameMatchError as exc:
        raise click.ClickException(f"name matching failed: {exc}") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    # The score can only be checked against the file, but it is still a bad
    # option, not bad data: exit 2.
    try:
        human_data.check_score(options["score"])
        corr.score_direction(options["score"], options["score_dir"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--score") from exc
    try:
        return corr.correlate(human_data, table, aliases=aliases, **options)
    except NameMatchError as exc:
        raise click.ClickException(f"name matching failed: {exc}") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _echo_table(correlations: pd.DataFrame) -> None:
    done = correlations[correlations["error"].fillna("") == ""]
    if done.empty:
        click.echo("no correlations computed")
        return
    shown = done[list(SHOWN)].copy()
    numbers = ["coefficient", "ci_low", "ci_high", "agreement"]
    shown[numbers] = shown[numbers].astype(float).round(3)
    shown[["p_val", "p_val_bh"]] = shown[["p_val", "p_val_bh"]].map(
        lambda p: f"{p:.2g}"
    )
    click.echo(shown.to_string(index=False))
