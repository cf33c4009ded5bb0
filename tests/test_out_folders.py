"""An --out folder that cannot be created is refused in one line, before work.

A folder under an existing file is the portable impossible folder (a file
system mounted read-only would be another).
"""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from researcher_helpers import make_study_row

from analysis.cli import main
from analysis.simulate import simulate_study


@pytest.fixture
def blocked(tmp_path):
    """A path whose parent is a regular file, so it cannot become a folder."""
    (tmp_path / "a-file").write_text("not a folder\n")
    return tmp_path / "a-file" / "out"


def _human_and_metrics(tmp_path):
    models = ["a", "b", "c", "d"]
    human = tmp_path / "human_scores.csv"
    pd.DataFrame(
        {
            "dataset": "d1",
            "model": models,
            "n_participants": 10,
            "n_trials": 1000,
            "error_rate": [0.1, 0.2, 0.3, 0.4],
            "error_rate_sem": 0.01,
        }
    ).to_csv(human, index=False)
    metrics = tmp_path / "metrics.csv"
    wide = {"dataset": "d1", "model": models, "FD": [4.0, 3.0, 2.0, 1.0]}
    pd.DataFrame(wide).to_csv(metrics, index=False)
    return human, metrics


def _refused(result, blocked) -> None:
    assert result.exit_code == 1, result.output
    assert f"cannot create {blocked}: Not a directory" in result.output
    assert "Traceback" not in result.output


def test_analysis_fit(tmp_path, blocked):
    trials = tmp_path / "trials.csv"
    simulate_study((0.2, 0.3), participants_per_model=3, seed=1)[0].to_csv(
        trials, index=False
    )
    result = CliRunner().invoke(main, ["fit", str(trials), "--out", str(blocked)])
    _refused(result, blocked)


def test_analysis_correlate_refuses_before_the_bootstrap(tmp_path, blocked):
    human, metrics = _human_and_metrics(tmp_path)
    args = ["correlate", str(human), str(metrics), "--encoder", "dinov2_vitl14"]
    result = CliRunner().invoke(main, [*args, "--out", str(blocked)])
    _refused(result, blocked)
    assert "matched" not in result.output  # nothing was computed


def test_analysis_metrics(tmp_path, blocked):
    args = ["metrics", str(tmp_path / "x.npz"), str(tmp_path / "y.npz")]
    result = CliRunner().invoke(main, [*args, "--out", str(blocked)])
    _refused(result, blocked)


def test_flask_export(app, runner, blocked):
    make_study_row(app)
    result = runner.invoke(args=["export", "pilot", "--out", str(blocked)])
    _refused(result, blocked)


@pytest.mark.parametrize("command", ["correlate", "metrics"])
def test_a_folder_made_for_a_run_that_fails_is_removed(tmp_path, command):
    out = tmp_path / "new" / "out"
    empty = tmp_path / ("empty.csv" if command == "correlate" else "empty.npz")
    empty.write_text("")
    args = [command, str(empty), str(empty), "--out", str(out)]
    if command == "correlate":
        args += ["--encoder", "dinov2_vitl14"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "new").exists()
