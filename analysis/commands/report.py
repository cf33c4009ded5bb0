"""``analysis report``: one self-contained HTML file of a fit's results."""

from __future__ import annotations

from pathlib import Path

import click

from analysis.report import build_report


@click.command()
@click.argument("fit_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="HTML file to write (default: FIT_DIR/report.html).",
)
@click.option("--title", default=None, help="Title of the report page.")
def report(fit_dir: str, out_file: str | None, title: str | None) -> None:
    """Write a self-contained HTML report of the fit in FIT_DIR.

    FIT_DIR is the --out folder of `analysis fit`. The page embeds plotly's
    JavaScript, so it opens offline: per-model error rates with intervals,
    fake against real error rates, response-time distributions (per-trial
    data only) and the exclusions.
    """
    try:
        page = build_report(fit_dir, title=title)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    path = Path(out_file) if out_file else Path(fit_dir) / "report.html"
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from exc
    click.echo(f"Wrote {path} ({len(page) / 1e6:.1f} MB)")
