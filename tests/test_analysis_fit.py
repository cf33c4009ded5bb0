"""``analysis fit``: outputs, the published reproduction and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.scores import HUMAN_SCORE_COLUMNS
from analysis.simulate import simulate_study

PUBLISHED = "anchors/dgm_eval_human_realism"
DATASETS = ("cifar10", "ffhq256", "imagenet256", "lsun256")

# Per-model means of err_rt and participant counts, written out from the
# published files (rounded to 4 decimals).
BY_HAND = {
    ("cifar10", "ACGAN"): (0.1482, 25),
    ("cifar10", "LSGM-ODE"): (0.4369, 27),
    ("cifar10", "iDDPM-DDIM"): (0.3996, 26),
    ("ffhq256", "unleashing"): (0.1726, 27),
    ("ffhq256", "efficient-vdvae"): (0.0884, 25),
    ("imagenet256", "DiT-XL-2-guided"): (0.3296, 27),
    ("imagenet256", "LDM"): (0.3088, 26),
    ("lsun256", "ct2"): (0.1552, 25),
    ("lsun256", "stylegan"): (0.2165, 26),
}


def run(*args: str):
    return CliRunner().invoke(main, ["fit", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def published_fit(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("published")
    files = [
        str(shared_data / PUBLISHED / "per_participant" / f"{d}.csv") for d in DATASETS
    ]
    result = run(*files, "--out", str(out), "--n-boot", "2000", "--seed", "1")
    assert result.exit_code == 0, result.output
    return out, pd.read_csv(out / "human_scores.csv")


def test_published_means_reproduced_to_4_decimals(shared_data, published_fit):
    _, scores = published_fit
    assert len(scores) == 41
    for dataset in DATASETS:
        raw = pd.read_csv(
            shared_data / PUBLISHED / "per_participant" / f"{dataset}.csv"
        )
        expected = raw.groupby("model")["err_rt"].agg(["mean", "size"])
        mine = scores[scores["dataset"] == dataset].set_index("model")
        assert sorted(mine.index) == sorted(expected.index)
        for model, row in expected.iterrows():
            assert round(mine.loc[model, "error_rate"], 4) == round(row["mean"], 4)
            assert mine.loc[model, "n_participants"] == row["size"]
    indexed = scores.set_index(["dataset", "model"])
    for key, (mean, n) in BY_HAND.items():
        assert round(indexed.loc[key, "error_rate"], 4) == mean, key
        assert indexed.loc[key, "n_participants"] == n, key


def test_published_intervals(published_fit):
    _, scores = published_fit
    assert (scores["ci_method"] == "participant_bootstrap").all()
    assert (scores["ci_low"] < scores["error_rate"]).all()
    assert (scores["error_rate"] < scores["ci_high"]).all()
    # With 25 participants the percentile bootstrap is close to mean +- 1.96 SEM.
    normal_low = scores["error_rate"] - 1.96 * scores["error_rate_sem"]
    np.testing.assert_allclose(scores["ci_low"], normal_low, atol=0.01)
    assert (scores["fake_ci_low"] < scores["fake_error_rate"]).all()
    assert (scores["real_error_rate"] < scores["real_ci_high"]).all()
    assert scores["d_prime"].notna().all()


def test_published_exclusions_not_applicable(published_fit):
    out, _ = published_fit
    exclusions = pd.read_csv(out / "exclusions.csv")
    assert set(exclusions["dataset"]) == set(DATASETS)
    assert not exclusions["applied"].any()
    assert (exclusions[["n_participants", "n_trials"]] == 0).all().all()


def test_bootstrap_is_reproducible_with_seed(shared_data, tmp_path):
    path = str(shared_data / PUBLISHED / "per_participant" / "lsun256.csv")
    run(path, "--out", str(tmp_path / "a"), "--n-boot", "500", "--seed", "3")
    run(path, "--out", str(tmp_path / "b"), "--n-boot", "500", "--seed", "3")
    run(path, "--out", str(tmp_path / "c"), "--n-boot", "500", "--seed", "4")
    a, b, c = (pd.read_csv(tmp_path / x / "human_scores.csv") for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory):
    trials, _ = simulate_study(
        (0.2, 0.3, 0.4),
        participants_per_model=8,
        trials_per_participant=40,
        fake_images_per_model=40,
        real_images=60,
        seed=1,
    )
    trials.loc[trials["participant"] == "model_01-p000", "session_status"] = "returned"
    trials.loc[trials["participant"] == "model_01-p001", "rt_ms"] = 120.0
    path = tmp_path_factory.mktemp("export") / "trials.csv"
    trials.to_csv(path, index=False)
    return path


def test_fit_on_trials_writes_the_contract(export_csv, tmp_path):
    result = run(str(export_csv), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Warning: exclusions: simulated/incomplete_session: 1 participants" in (
        result.stderr
    )
    scores = pd.read_csv(tmp_path / "human_scores.csv")
    assert list(scores.columns) == [c for c, _, _ in HUMAN_SCORE_COLUMNS]
    assert (scores["ci_method"] == "glm_cluster2").all()
    assert list(scores["n_participants"]) == [6, 8, 8]
    assert (scores["n_trials"] == scores["n_participants"] * 40).all()
    exclusions = pd.read_csv(tmp_path / "exclusions.csv")
    table = exclusions.set_index("reason")
    assert table.loc["incomplete_session", "n_participants"] == 1
    assert table.loc["too_fast", "n_trials"] == 40
    participants = pd.read_csv(tmp_path / "participants.csv")
    assert len(participants) == 22 and "d_prime" in participants
    for name in ("images", "image_scores", "rt_histogram"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    assert not (tmp_path / "mixed_fit.csv").exists()
    info = json.loads((tmp_path / "fit.json").read_text())
    assert info["settings"]["exclusion_rules"]["max_failed_checks"] == 1


def test_json_document_on_stdout(export_csv, tmp_path):
    result = run(str(export_csv), "--out", str(tmp_path), "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert len(document["human_scores"]) == 3
    first = document["human_scores"][0]
    assert first["ci_method"] == "glm_cluster2" and first["mixed_error_rate"] is None
    assert {r["reason"] for r in document["exclusions"]} >= {
        "failed_checks",
        "too_fast",
    }
    assert document["warnings"]
    assert "participants" not in document
    assert document["files"]["participants"].endswith("participants.csv")


def test_mixed_fit_option(export_csv, tmp_path):
    result = run(str(export_csv), "--out", str(tmp_path), "--mixed")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(tmp_path / "human_scores.csv")
    assert scores["mixed_error_rate"].between(0, 1).all()
    assert scores["mixed_image_sd"].gt(0).all()
    mixed = pd.read_csv(tmp_path / "mixed_fit.csv")
    assert set(mixed["kind"]) == {"fixed", "random_sd"}
    assert "sd(participant)" in set(mixed["term"])
    # A second run without --mixed leaves no stale mixed_fit.csv behind.
    run(str(export_csv), "--out", str(tmp_path))
    assert not (tmp_path / "mixed_fit.csv").exists()


def test_keep_options_change_counts(export_csv, tmp_path):
    result = run(
        str(export_csv),
        "--out",
        str(tmp_path),
        "--keep-incomplete",
        "--min-median-rt-ms",
        "0",
    )
    assert result.exit_code == 0
    scores = pd.read_csv(tmp_path / "human_scores.csv")
    assert list(scores["n_participants"]) == [8, 8, 8]


def test_single_participant_model_gets_nan_interval(export_csv, tmp_path):
    trials = pd.read_csv(export_csv)
    keep = (trials["model"] != "model_03") | (trials["participant"] == "model_03-p000")
    path = tmp_path / "lonely.csv"
    trials[keep].to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert "one participant" in result.stderr and "model_03" in result.stderr
    scores = pd.read_csv(tmp_path / "out" / "human_scores.csv").set_index("model")
    assert np.isnan(scores.loc["model_03", "ci_low"])
    assert np.isnan(scores.loc["model_03", "error_rate_sem"])
    assert scores.loc["model_02", "ci_low"] > 0


def test_missing_column_exits_1_naming_it(export_csv, tmp_path):
    trials = pd.read_csv(export_csv).drop(columns="stimulus")
    path = tmp_path / "bad.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"), "--format", "trials")
    assert result.exit_code == 1
    assert "stimulus" in result.output


def test_non_binary_response_exits_1(export_csv, tmp_path):
    trials = pd.read_csv(export_csv)
    trials.loc[3, "response"] = "unsure"
    path = tmp_path / "bad.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "'unsure'" in result.output and "allowed: real, generated" in result.output


def test_mixed_datasets_without_dataset_column(shared_data, tmp_path):
    folder = shared_data / PUBLISHED / "per_participant"
    both = pd.concat(
        [pd.read_csv(folder / "lsun256.csv"), pd.read_csv(folder / "ffhq256.csv")]
    )
    path = tmp_path / "both.csv"
    both.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "mix datasets without a dataset column" in result.output


def test_trials_without_dataset_need_the_option(export_csv, tmp_path):
    trials = pd.read_csv(export_csv).drop(columns="dataset")
    path = tmp_path / "nodataset.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "--dataset" in result.output
    result = run(str(path), "--out", str(tmp_path / "out"), "--dataset", "cifar10")
    assert result.exit_code == 0
    scores = pd.read_csv(tmp_path / "out" / "human_scores.csv")
    assert set(scores["dataset"]) == {"cifar10"}


def test_usage_errors_exit_2(shared_data, tmp_path):
    path = str(shared_data / PUBLISHED / "per_participant" / "lsun256.csv")
    result = run(path, "--out", str(tmp_path), "--mixed")
    assert result.exit_code == 2 and "per-trial" in result.output
    result = run(path, "--out", str(tmp_path), "--format", "excel")
    assert result.exit_code == 2 and "trials" in result.output
    result = run(path, "--out", str(tmp_path), "--confidence", "95")
    assert result.exit_code == 2


def test_bad_alias_file_is_a_usage_error(shared_data, tmp_path):
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("kind,name,alias\nmethod,a,b\n")
    path = str(shared_data / PUBLISHED / "per_participant" / "lsun256.csv")
    result = run(path, "--out", str(tmp_path / "out"), "--alias", str(aliases))
    assert result.exit_code == 2 and "dataset, model" in result.output


def test_per_image_files(shared_data, tmp_path):
    folder = shared_data / PUBLISHED
    result = run(
        str(folder / "per_participant" / "lsun256.csv"),
        str(folder / "per_image" / "lsun_labeled_data.csv"),
        "--out",
        str(tmp_path),
        "--n-boot",
        "200",
    )
    assert result.exit_code == 0, result.output
    images = pd.read_csv(tmp_path / "image_scores.csv").set_index("model")
    # The per-image release has no LSUN rows for ct2 (see data README).
    assert "ct2" not in images.index and len(images) == 7
    raw = pd.read_csv(folder / "per_image" / "lsun_labeled_data.csv")
    ddpm = raw[raw["model"] == "ddpm"]
    errors = np.where(
        ddpm["generated"] == 1,
        ddpm["number_guesses"] - ddpm["number_guesses_generated"],
        ddpm["number_guesses_generated"],
    )
    expected = errors.sum() / ddpm["number_guesses"].sum()
    assert images.loc["ddpm", "pooled_error_rate"] == pytest.approx(expected)
    scores = pd.read_csv(tmp_path / "human_scores.csv")
    assert len(scores) == 8  # human scores still come from participants


def test_per_image_only_writes_image_tables(shared_data, tmp_path):
    path = shared_data / PUBLISHED / "per_image" / "lsun_labeled_data.csv"
    result = run(str(path), "--out", str(tmp_path))
    assert result.exit_code == 0
    assert "needs per-participant or per-trial data" in result.stderr
    assert (tmp_path / "image_scores.csv").is_file()
    assert not (tmp_path / "human_scores.csv").exists()


def test_help_documents_every_column():
    result = CliRunner().invoke(main, ["fit", "--help"])
    assert result.exit_code == 0
    for column, unit, _ in HUMAN_SCORE_COLUMNS:
        assert f"{column} [{unit}]" in result.output, column


def test_within_design_export(tmp_path):
    """Real trials without a model count for each of the participant's models."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(6):
        for i in range(60):
            model = ("A", "B", None)[i % 3]
            is_real = model is None
            error = rng.random() < (0.2 if model == "A" else 0.4 if model else 0.3)
            said_real = is_real != error
            rows.append(
                {
                    "dataset": "within",
                    "participant": f"p{p}",
                    "session_status": "completed",
                    "model": model,
                    "stimulus": f"{model or 'real'}-{rng.integers(40)}",
                    "is_real": is_real,
                    "kind": "main",
                    "response": "real" if said_real else "generated",
                    "rt_ms": 700.0,
                }
            )
    trials = pd.DataFrame(rows).drop_duplicates(["participant", "stimulus"])
    path = tmp_path / "within.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"), "--mixed")
    assert result.exit_code == 0, result.output
    assert "within design" in result.stderr
    scores = pd.read_csv(tmp_path / "out" / "human_scores.csv").set_index("model")
    assert list(scores.index) == ["A", "B"]
    real = trials[trials["is_real"]]
    real_rate = (real["response"] == "generated").groupby(real["participant"]).mean()
    assert scores.loc["A", "real_error_rate"] == pytest.approx(real_rate.mean())
    assert scores.loc["B", "real_error_rate"] == pytest.approx(real_rate.mean())
    assert scores["mixed_error_rate"].notna().all()
    mixed = pd.read_csv(tmp_path / "out" / "mixed_fit.csv")
    assert "model[T.real]" in set(mixed["term"])


def test_model_emptied_by_exclusions_is_named(export_csv, tmp_path):
    trials = pd.read_csv(export_csv)
    trials.loc[trials["model"] == "model_03", "session_status"] = "returned"
    path = tmp_path / "emptied.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert "no participants left after exclusions for: simulated/model_03" in (
        result.stderr
    )
    scores = pd.read_csv(tmp_path / "out" / "human_scores.csv")
    assert list(scores["model"]) == ["model_01", "model_02"]


def test_everything_excluded_exits_1(export_csv, tmp_path):
    trials = pd.read_csv(export_csv).assign(session_status="abandoned")
    path = tmp_path / "abandoned.csv"
    trials.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "no answered main trials left after exclusions" in result.output
    assert "incomplete_session (24 participants)" in result.output


def test_one_participant_dataset_has_no_interval_others_unchanged(export_csv, tmp_path):
    """A pilot's export (one participant) beside a study: no crash, NaN interval."""
    trials = pd.read_csv(export_csv)
    pilot = trials[trials["participant"] == "model_02-p000"].assign(dataset="pilot")
    pilot_path = tmp_path / "pilot.csv"
    pilot.to_csv(pilot_path, index=False)
    alone = run(str(export_csv), "--out", str(tmp_path / "alone"))
    assert alone.exit_code == 0, alone.output
    both = run(str(pilot_path), str(export_csv), "--out", str(tmp_path / "both"))
    assert both.exit_code == 0, both.output
    assert (
        "Warning: models with one participant have no defined interval (NaN): "
        "pilot/model_02\n" in both.stderr
    )
    scores = pd.read_csv(tmp_path / "both" / "human_scores.csv")
    row = scores[scores["dataset"] == "pilot"].iloc[0]
    assert row["n_participants"] == 1 and row["n_trials"] == 40
    said_real = pilot["response"] == "real"
    assert row["error_rate"] == pytest.approx((said_real != pilot["is_real"]).mean())
    interval = [c for c in scores.columns if c.endswith(("ci_low", "ci_high"))]
    assert row[interval].isna().all()
    expected = pd.read_csv(tmp_path / "alone" / "human_scores.csv")
    study = scores[scores["dataset"] == "simulated"].reset_index(drop=True)
    pd.testing.assert_frame_equal(study, expected, check_exact=True)


def test_one_image_has_no_interval(export_csv, tmp_path):
    """One image (or one real image) leaves the clustered variance undefined."""
    trials = pd.read_csv(export_csv)
    model = trials[trials["model"] == "model_02"].copy()
    one_real = model.assign(dataset="one_real")
    one_real.loc[one_real["is_real"], "stimulus"] = "real-0"
    one_real = one_real.drop_duplicates(["participant", "stimulus"])
    one_image = model[model["stimulus"] == model["stimulus"].iloc[0]]
    one_image = one_image.assign(dataset="one_image")
    path = tmp_path / "few_images.csv"
    pd.concat([one_real, one_image]).to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"), "--min-median-rt-ms", "0")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: models with one image have no defined interval (NaN): "
        "one_image/model_02\n" in result.stderr
    )
    assert (
        "Warning: models with one image have no defined interval of "
        "real_error_rate (NaN): one_real/model_02\n" in result.stderr
    )
    scores = pd.read_csv(tmp_path / "out" / "human_scores.csv").set_index("dataset")
    assert scores.loc["one_image", ["ci_low", "ci_high"]].isna().all()
    assert scores.loc["one_real", ["real_ci_low", "real_ci_high"]].isna().all()
    low, rate, high = scores.loc["one_real", ["ci_low", "error_rate", "ci_high"]]
    assert 0 < low < rate < high < 1


def test_non_numeric_published_cell_names_file_column_value_and_row(tmp_path):
    path = tmp_path / "cifar10.csv"
    path.write_text(
        "id,model,num_correct,err_rt,f_err_rt,r_err_rt,r_ans_rt,resp_time,"
        "f_resp_time,r_resp_time\n"
        "participant_0,ACGAN,171.0,0.145,0.09,0.2,0.445,158.68,81.6,77.08\n"
        "participant_1,ACGAN,182.0,abc,0.06,0.12,0.47,260.57,135.27,125.3\n"
    )
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: column 'err_rt' must be numeric; found 'abc' in row 2 "
        "(line 3 of the file)\n"
    )
    assert not (tmp_path / "out").exists()


def test_non_numeric_cell_in_the_published_file_is_named(shared_data, tmp_path):
    raw = pd.read_csv(shared_data / PUBLISHED / "per_participant" / "cifar10.csv")
    raw["err_rt"] = raw["err_rt"].astype(object)
    raw.loc[10, "err_rt"] = "abc"
    path = tmp_path / "cifar10.csv"
    raw.to_csv(path, index=False)
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: column 'err_rt' must be numeric; found 'abc' in row 11 "
        "(line 12 of the file)\n"
    )
