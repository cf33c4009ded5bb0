"""``analysis correlate`` on the published data (skipped when it is absent).

The human side is the published per-participant CSVs of Stein et al. (2023),
the metric side their DINOv2-ViT-L/14 leaderboard as transcribed; the two
spell models differently and ``examples/dgm_eval_aliases.csv`` pairs them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from analysis import correlate as corr
from analysis.cli import main
from analysis.names import Aliases

DATASETS = {"cifar10": 13, "imagenet256": 11, "ffhq256": 9, "lsun256": 8}
ALIASES = Path(__file__).resolve().parents[1] / "examples" / "dgm_eval_aliases.csv"


def _inputs(shared_data):
    root = shared_data / "anchors" / "dgm_eval_human_realism"
    human = [root / "per_participant" / f"{name}.csv" for name in DATASETS]
    table = root / "transcribed" / "table11_dinov2_vitl14_metrics.csv"
    return human, table


def _tables(shared_data):
    human_files, table_file = _inputs(shared_data)
    human = corr.read_human(human_files)
    with pytest.warns(UserWarning, match="Test Set, Validation Set"):
        table = corr.read_metric_table(table_file, encoder="dinov2_vitl14")
    return human, table


def test_every_one_of_the_41_models_matches_with_the_alias_file(shared_data):
    human, table = _tables(shared_data)
    scores = human.model_scores("error_rate")
    found = corr.match_tables(scores, table, Aliases.from_file(ALIASES))
    assert found.unmatched.empty
    assert len(found.matched) == 41
    assert found.matched["dataset"].value_counts().to_dict() == DATASETS
    pairs = dict(
        zip(found.matched["model"], found.matched["metrics_model"], strict=True)
    )
    assert pairs["PFGMPP"] == "PFGM++"
    assert pairs["ct2"] == "Consistency"
    assert pairs["admnet-dropout"] == "ADM-dropout"
    assert pairs["diffusion-projected-gan"] == "Diff-ProjGAN"
    assert pairs["unleashing"] == pairs["unleashing-transformers"] == "Unleash-Trans"


def test_without_the_alias_file_the_differences_are_listed(shared_data):
    human, table = _tables(shared_data)
    found = corr.match_tables(human.model_scores("error_rate"), table)
    assert len(found.matched) == 41 - 8 - 2  # LSUN's 8, PFGMPP, unleashing
    listed = set(zip(found.unmatched["side"], found.unmatched["name"], strict=True))
    assert listed == {
        ("human", "lsun256"),
        ("metrics", "LSUN-Bedroom"),
        ("human", "PFGMPP"),
        ("metrics", "PFGM++"),
        ("human", "unleashing"),
        ("metrics", "Unleash-Trans"),
    }


def test_command_fd_correlations_equal_scipy_on_the_matched_pairs(
    shared_data, tmp_path
):
    human_files, table_file = _inputs(shared_data)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(
            main,
            [
                "correlate",
                *map(str, human_files),
                str(table_file),
                "--alias",
                str(ALIASES),
                "--encoder",
                "dinov2_vitl14",
                "--method",
                "spearman,kendall",
                "--bootstrap",
                "500",
                "--out",
                str(out),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "41 models matched; 0 names unmatched" in result.stdout

    correlations = pd.read_csv(out / "correlations.csv")
    matched = pd.read_csv(out / "matched.csv")
    leaderboard = pd.read_csv(table_file)
    fd_rows = correlations[correlations["metric"] == "FD"]
    assert sorted(fd_rows["dataset"].unique()) == sorted(DATASETS)
    for path in human_files:
        dataset = path.stem
        # The published definition: the mean over participants of err_rt.
        human = pd.read_csv(path).groupby("model")["err_rt"].mean()
        pairs = matched[matched["dataset"] == dataset]
        board = leaderboard[leaderboard["dataset"] == pairs["metrics_dataset"].iloc[0]]
        fd = board.set_index("model").loc[pairs["metrics_model"], "FD"].to_numpy()
        x = human.loc[pairs["model"]].to_numpy()
        assert len(x) == DATASETS[dataset]
        for method, test in (
            ("spearman", stats.spearmanr),
            ("kendall", stats.kendalltau),
        ):
            row = fd_rows[
                (fd_rows["dataset"] == dataset) & (fd_rows["method"] == method)
            ]
            want = test(x, fd)
            assert row["coefficient"].iloc[0] == pytest.approx(
                want.statistic, abs=1e-12
            )
            assert row["p_val"].iloc[0] == pytest.approx(want.pvalue, rel=1e-9)
            assert row["n_models"].iloc[0] == DATASETS[dataset]
            # Lower FD with a higher error rate: the raw sign is negative and
            # the agreement its negation.
            assert row["agreement"].iloc[0] == pytest.approx(-want.statistic)
    assert np.all(fd_rows["coefficient"] < 0)
