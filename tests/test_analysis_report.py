"""``analysis report``: one self-contained HTML file holding the figure data."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from plotly.offline import get_plotlyjs

from analysis.cli import main
from analysis.simulate import simulate_study

PUBLISHED = "anchors/dgm_eval_human_realism"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trial_fit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    trials, _ = simulate_study(
        (0.2, 0.35),
        participants_per_model=6,
        trials_per_participant=40,
        fake_images_per_model=40,
        real_images=60,
        seed=4,
    )
    trials.loc[trials["participant"] == "model_02-p005", "rt_ms"] = 90.0
    trials.to_csv(folder / "trials.csv", index=False)
    result = invoke("fit", str(folder / "trials.csv"), "--out", str(folder / "fit"))
    assert result.exit_code == 0, result.output
    result = invoke("report", str(folder / "fit"))
    assert result.exit_code == 0, result.output
    return folder / "fit", (folder / "fit" / "report.html").read_text()


def plotly_data(page: str, div_id: str) -> list[dict]:
    """The trace list passed to Plotly.newPlot for one figure."""
    match = re.search(
        r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*(\[.*?\])\s*,\s*\{',
        page,
        flags=re.S,
    )
    assert match, f"no figure {div_id}"
    return json.loads(match.group(1))


def test_report_is_self_contained(trial_fit):
    _, page = trial_fit
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    # plotly.js itself is inline, once. Its bundle names a few URLs (map
    # tiles and topojson for geo charts, which the report does not draw);
    # the page around it refers to nothing outside the file.
    bundle = get_plotlyjs()
    assert page.count(bundle) == 1
    assert "http" not in page.replace(bundle, "")


def test_report_holds_error_rates_and_intervals(trial_fit):
    folder, page = trial_fit
    scores = pd.read_csv(folder / "human_scores.csv").sort_values("error_rate")
    (trace,) = plotly_data(page, "error-rate-0")
    assert trace["y"] == list(scores["model"])
    assert trace["x"] == pytest.approx(list(scores["error_rate"]))
    upper = scores["ci_high"] - scores["error_rate"]
    assert trace["error_x"]["array"] == pytest.approx(list(upper))


def test_report_holds_fake_and_real_rates(trial_fit):
    folder, page = trial_fit
    scores = pd.read_csv(folder / "human_scores.csv").sort_values("error_rate")
    fake, real = plotly_data(page, "fake-real-0")
    assert fake["y"] == pytest.approx(list(scores["fake_error_rate"]))
    assert real["y"] == pytest.approx(list(scores["real_error_rate"]))


def test_report_holds_response_times_and_exclusions(trial_fit):
    folder, page = trial_fit
    traces = plotly_data(page, "rt-0")
    assert [t["name"] for t in traces] == ["model_01", "model_02"]
    # Shares of the model's trials per 100 ms bin; the open bin beyond 5 s
    # is not drawn.
    hist = pd.read_csv(folder / "rt_histogram.csv")
    first = hist[hist["model"] == "model_01"]
    shares = first.groupby("bin_low_ms")["n_trials"].sum() / first["n_trials"].sum()
    shares = shares[shares.index < 5000]
    assert traces[0]["x"] == pytest.approx(list(shares.index + 50.0))
    assert traces[0]["y"] == pytest.approx(list(shares))
    assert plotly_data(page, "rt-median-0")
    assert "too_fast" in page
    (bars,) = plotly_data(page, "exclusions")
    assert bars["x"][bars["y"].index(40.0)] == "too_fast"


def test_report_on_published_data_says_no_rt(shared_data, tmp_path):
    path = shared_data / PUBLISHED / "per_participant" / "lsun256.csv"
    invoke("fit", str(path), "--out", str(tmp_path), "--n-boot", "200")
    out = tmp_path / "page.html"
    result = invoke("report", str(tmp_path), "--out", str(out), "--title", "LSUN")
    assert result.exit_code == 0
    page = out.read_text()
    assert "<title>LSUN</title>" in page
    assert "No per-trial response times" in page
    (trace,) = plotly_data(page, "error-rate-0")
    assert "ct2" in trace["y"] and len(trace["y"]) == 8


def test_report_without_fit_exits_1(tmp_path):
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 1
    assert "human_scores.csv" in result.output and "analysis fit" in result.output


def test_report_lists_mixed_fit_and_image_summaries(trial_fit, tmp_path):
    folder, _ = trial_fit
    export = folder.parent / "trials.csv"
    out = tmp_path / "fit"
    assert invoke("fit", str(export), "--out", str(out), "--mixed").exit_code == 0
    assert invoke("report", str(out)).exit_code == 0
    page = (out / "report.html").read_text()
    assert "Mixed-effects fit" in page and "sd(participant)" in page
    assert "not an interval" in page
    assert "Per-image summaries" in page and "pooled_fake_error_rate" in page


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fit.json", "{", "fit.json: not a readable JSON file"),
        ("fit.json", "[1, 2]", "fit.json: expected a JSON object"),
        ("human_scores.csv", "", "human_scores.csv is empty"),
        ("exclusions.csv", "", "exclusions.csv is empty"),
        ("exclusions.csv", "a,b\n1,2\n", "exclusions.csv lacks the column(s) reason"),
        ("participants.csv", b"\xff\xfe\x00bad", "participants.csv: cannot read"),
    ],
)
def test_a_damaged_fit_file_is_named(trial_fit, tmp_path, name, content, message):
    import shutil

    folder = tmp_path / "fit"
    shutil.copytree(trial_fit[0], folder)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = CliRunner().invoke(
        main, ["report", str(folder), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
