"""A self-contained HTML report of a fit: what did people perceive, per model?

:func:`build_report` reads the folder written by ``analysis fit`` and
returns one HTML page with plotly figures: per-model human error rates with
their intervals, fake against real error rates, response-time distributions
(when the fit had per-trial data) and the exclusions. plotly's JavaScript is
embedded in the page (no CDN), so the file opens offline, for example on a
laptop in a testing room. Figure data are written as plain JSON lists, so
the numbers can be read from the file itself.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

REQUIRED_FILES = ("human_scores.csv", "exclusions.csv")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9rem; }
.warning { color: #8a4b00; font-size: 0.85rem; }
"""


def _read_table(path: Path) -> pd.DataFrame:
    """One CSV of the fit folder; a damaged file is named in the error."""
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read it as a CSV table ({exc})") from None
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path} is empty; run `analysis fit ... --out {path.parent}` again"
        ) from None


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(info).__name__}")
    return info


def build_report(fit_dir: str | Path, *, title: str | None = None) -> str:
    """Return the HTML report of a fit folder as a string.

    Parameters
    ----------
    fit_dir : str or Path
        A folder written by ``analysis fit`` (it must hold
        ``human_scores.csv`` and ``exclusions.csv``; ``participants.csv``,
        ``rt_histogram.csv``, ``mixed_fit.csv``, ``image_scores.csv`` and
        ``fit.json`` are used when present).
    title : str, optional
        Page title; by default names the datasets.

    Returns
    -------
    str
        A complete HTML document with plotly.js inline and no external
        resources.

    Raises
    ------
    ValueError
        If a required file is missing or ``human_scores.csv`` lacks columns.
    """
    folder = Path(fit_dir)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"{folder} lacks {', '.join(missing)}; run `analysis fit ... --out "
            f"{folder}` first"
        )
    scores = _read_table(folder / "human_scores.csv")
    needed = ["dataset", "model", "error_rate", "ci_low", "ci_high"]
    absent = [c for c in needed if c not in scores.columns]
    if absent:
        raise ValueError(f"human_scores.csv lacks the column(s) {', '.join(absent)}")
    exclusions = _read_table(folder / "exclusions.csv")
    absent = [
        c for c in ("reason", "n_participants", "n_trials") if c not in exclusions
    ]
    if absent:
        raise ValueError(f"exclusions.csv lacks the column(s) {', '.join(absent)}")
    optional = {
        name: _read_table(folder / f"{name}.csv")
        for name in ("participants", "rt_histogram", "mixed_fit", "image_scores")
        if (folder / f"{name}.csv").is_file()
    }
    info = {}
    if (folder / "fit.json").is_file():
        info = _read_json(folder / "fit.json")
    datasets = sorted(scores["dataset"].astype(str).unique())
    title = title or f"Human realism scores: {', '.join(datasets)}"

    sections = [_overview(scores, info)]
    sections.append(_section("Human error rate by model", _error_rate_figures(scores)))
    sections.append(
        _section("Generated judged real and real judged generated", _fake_real(scores))
    )
    sections.append(_section("Response times", _response_times(optional)))
    sections.append(_section("Exclusions", _exclusions(exclusions)))
    if "mixed_fit" in optional:
        sections.append(_section("Mixed-effects fit", _mixed(optional["mixed_fit"])))
    if "image_scores" in optional:
        sections.append(
            _section("Per-image summaries", _image_scores(optional["image_scores"]))
        )
    return _page(title, sections)


def _page(title: str, sections: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            # plotly.js inline, once, before the figures that use it.
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            *sections,
            "</body>",
            "</html>",
        ]
    )


def _section(heading: str, body: list[str] | str) -> str:
    parts = body if isinstance(body, list) else [body]
    return "\n".join([f"<h2>{html.escape(heading)}</h2>", *parts])


def _figure(fig: go.Figure, div_id: str) -> str:
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{fig.layout.height or 450}px",
        config={"displaylogo": False},
    )


def _values(series: pd.Series) -> list:
    """Plain Python numbers (None for missing), so the JSON stays readable."""
    return [None if pd.isna(v) else float(v) for v in series]


def _overview(scores: pd.DataFrame, info: dict) -> str:
    methods = ", ".join(sorted(scores["ci_method"].dropna().astype(str).unique()))
    level = scores["ci_level"].dropna()
    level_text = f"{100 * level.iloc[0]:g}%" if len(level) else "95%"
    n_datasets = scores["dataset"].nunique()
    lines = [
        f"<p>{len(scores)} models in {n_datasets} "
        f"dataset{'' if n_datasets == 1 else 's'}, "
        f"{int(scores['n_participants'].sum())} participants and "
        f"{int(scores['n_trials'].sum())} main trials after exclusions. "
        f"Intervals: {level_text}, method {html.escape(methods)} "
        "(glm_cluster2: binomial GLM with errors clustered on participant and "
        "image; participant_bootstrap: percentile bootstrap over participants).</p>"
    ]
    settings = info.get("settings")
    if settings:
        lines.append(
            '<p class="note">Inputs: '
            + html.escape(", ".join(settings.get("inputs", [])))
            + ". Exclusion rules: "
            + html.escape(json.dumps(settings.get("exclusion_rules", {})))
            + "</p>"
        )
    for message in info.get("warnings", []):
        lines.append(f'<p class="warning">Warning: {html.escape(message)}</p>')
    return "\n".join(lines)


def _error_rate_figures(scores: pd.DataFrame) -> list[str]:
    out = []
    for i, (dataset, group) in enumerate(scores.groupby("dataset", sort=True)):
        group = group.sort_values("error_rate")
        fig = go.Figure(
            go.Scatter(
                x=_values(group["error_rate"]),
                y=[str(m) for m in group["model"]],
                mode="markers",
                name="error_rate",
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": _values(group["ci_high"] - group["error_rate"]),
                    "arrayminus": _values(group["error_rate"] - group["ci_low"]),
                },
                customdata=np.c_[group["ci_low"], group["ci_high"]].tolist(),
                hovertemplate="%{y}: %{x:.3f} [%{customdata[0]:.3f}, "
                "%{customdata[1]:.3f}]<extra></extra>",
            )
        )
        fig.add_vline(x=0.5, line_dash="dot", line_color="#999")
        fig.update_layout(
            title=f"{dataset}: human error rate (chance = 0.5)",
            xaxis_title="error rate (mean over participants) with interval",
            height=max(300, 40 + 28 * len(group)),
            margin={"l": 200},
        )
        out.append(_figure(fig, f"error-rate-{i}"))
    return out


def _fake_real(scores: pd.DataFrame) -> list[str]:
    out = []
    for i, (dataset, group) in enumerate(scores.groupby("dataset", sort=True)):
        group = group.sort_values("error_rate")
        fig = go.Figure()
        for prefix, label in (
            ("fake_", "generated judged real"),
            ("real_", "real judged generated"),
        ):
            rate = group[f"{prefix}error_rate"]
            fig.add_trace(
                go.Bar(
                    x=[str(m) for m in group["model"]],
                    y=_values(rate),
                    name=f"{prefix}error_rate ({label})",
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": _values(group[f"{prefix}ci_high"] - rate),
                        "arrayminus": _values(rate - group[f"{prefix}ci_low"]),
                    },
                )
            )
        fig.update_layout(
            title=f"{dataset}: fake and real error rates",
            yaxis_title="error rate",
            barmode="group",
            height=450,
        )
        out.append(_figure(fig, f"fake-real-{i}"))
    return out


def _response_times(optional: dict[str, pd.DataFrame]) -> list[str]:
    hist = optional.get("rt_histogram")
    if hist is None or hist.empty:
        return [
            '<p class="note">No per-trial response times in the inputs '
            "(published per-participant files hold only total seconds).</p>"
        ]
    out = []
    finite = hist[np.isfinite(hist["bin_high_ms"])]
    for i, (dataset, group) in enumerate(finite.groupby("dataset", sort=True)):
        fig = go.Figure()
        for model, part in group.groupby("model", sort=True):
            counts = part.groupby("bin_low_ms")["n_trials"].sum()
            total = hist.loc[
                (hist["dataset"] == dataset) & (hist["model"] == model), "n_trials"
            ].sum()
            fig.add_trace(
                go.Scatter(
                    x=_values(pd.Series(counts.index + 50.0)),
                    y=_values(counts / total),
                    mode="lines",
                    name=str(model),
                )
            )
        fig.update_layout(
            title=f"{dataset}: response times (share of trials per 100 ms; "
            "slower than 5 s not drawn)",
            xaxis_title="response time (ms)",
            yaxis_title="share of trials",
            height=420,
        )
        out.append(_figure(fig, f"rt-{i}"))
    participants = optional.get("participants")
    if participants is not None and "rt_median_ms" in participants.columns:
        for i, (dataset, group) in enumerate(
            participants.groupby("dataset", sort=True)
        ):
            fig = go.Figure()
            for model, part in group.groupby("model", sort=True):
                fig.add_trace(go.Box(y=_values(part["rt_median_ms"]), name=str(model)))
            fig.update_layout(
                title=f"{dataset}: participants' median response time",
                yaxis_title="median response time (ms)",
                showlegend=False,
                height=420,
            )
            out.append(_figure(fig, f"rt-median-{i}"))
    return out


def _exclusions(exclusions: pd.DataFrame) -> list[str]:
    out = [exclusions.to_html(index=False, border=0, na_rep="")]
    counted = exclusions.groupby("reason", sort=False)[
        ["n_participants", "n_trials"]
    ].sum()
    if counted.to_numpy().sum() > 0:
        fig = go.Figure(
            go.Bar(
                x=list(counted.index),
                y=_values(counted["n_trials"]),
                name="n_trials",
                customdata=_values(counted["n_participants"]),
                hovertemplate="%{x}: %{y} trials, %{customdata} participants"
                "<extra></extra>",
            )
        )
        fig.update_layout(
            title="Main trials excluded, by reason", yaxis_title="trials", height=350
        )
        out.append(_figure(fig, "exclusions"))
    else:
        out.append('<p class="note">Nothing was excluded.</p>')
    return out


def _mixed(table: pd.DataFrame) -> list[str]:
    return [
        '<p class="note">correct ~ model + (1|participant) + (1|image), fitted '
        "by variational Bayes (statsmodels). sd_vb is the posterior SD, far "
        "smaller than lme4's standard errors; it is not an interval.</p>",
        table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4f}"),
    ]


def _image_scores(table: pd.DataFrame) -> list[str]:
    return [
        '<p class="note">Pooled over judgements, per model: not the human error '
        "rate (a mean over participants) and without participant-level "
        "uncertainty. The SD over images mixes differences in difficulty with "
        "binomial noise.</p>",
        table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4f}"),
    ]
