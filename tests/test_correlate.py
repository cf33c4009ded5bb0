"""``analysis correlate``: reading, matching, statistics and the command."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from analysis import correlate as corr
from analysis.bootstrap import dataset_rng, resample_blocks
from analysis.cli import main
from analysis.names import Aliases, NameMatchError, normalize_name

# --------------------------------------------------------------------------
# Synthetic inputs


def write_participants(path: Path, models: dict[str, float], seed: int, n: int = 25):
    """A per-participant CSV in the published layout.

    Each participant's generated and real errors are binomial(100, rate) with
    the model's rate, so the file passes the reader's count checks.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for model, rate in models.items():
        for _ in range(n):
            fake, real = rng.binomial(100, rate), rng.binomial(100, rate)
            rows.append(
                {
                    "id": f"participant_{len(rows)}",
                    "model": model,
                    "num_correct": 200 - fake - real,
                    "err_rt": (fake + real) / 200,
                    "f_err_rt": fake / 100,
                    "r_err_rt": real / 100,
                    "r_ans_rt": (100 - real + fake) / 200,
                    "resp_time": 300.0,
                    "f_resp_time": 150.0,
                    "r_resp_time": 150.0,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_scores(path: Path, dataset: str, scores: dict[str, float]) -> Path:
    """A human_scores.csv in the layout of ``analysis fit``."""
    frame = pd.DataFrame(
        {
            "dataset": dataset,
            "model": list(scores),
            "n_participants": 25,
            "n_trials": 5000,
            "error_rate": list(scores.values()),
            "error_rate_sem": 0.01,
            "ci_low": np.array(list(scores.values())) - 0.02,
            "ci_high": np.array(list(scores.values())) + 0.02,
            "ci_method": "participant_bootstrap",
        }
    )
    frame.to_csv(path, index=False, mode="a", header=not path.exists())
    return path


def wide_table(dataset: str, models: list[str], **columns) -> pd.DataFrame:
    return pd.DataFrame({"dataset": dataset, "model": models, **columns})


# Ten models whose realism rises with their index; FD falls with it, precision
# is unrelated noise, C_T has no better end.
MODELS = [f"Model-{i}" for i in range(10)]
RATES = dict(zip(MODELS, np.linspace(0.05, 0.40, 10), strict=True))


@pytest.fixture
def study(tmp_path):
    """Per-participant data for two datasets and a wide metric table."""
    write_participants(tmp_path / "cifar10.csv", RATES, seed=1)
    small = dict(list(RATES.items())[:6])
    write_participants(tmp_path / "ffhq256.csv", small, seed=2)
    rng = np.random.default_rng(3)
    fd = 500 - 1000 * np.array(list(RATES.values())) + rng.normal(0, 40, 10)
    table = pd.concat(
        [
            wide_table(
                "CIFAR10",
                [m.upper().replace("-", "_") for m in MODELS] + ["Test Set"],
                FD=[*fd, 1.0],
                precision=[*rng.uniform(0.6, 0.9, 10), 0.9],
                C_T=[*rng.normal(0, 20, 10), np.nan],
            ),
            wide_table(
                "FFHQ256",
                list(small),
                FD=fd[:6],
                precision=rng.uniform(0.6, 0.9, 6),
                C_T=rng.normal(0, 20, 6),
            ),
        ]
    )
    table.to_csv(tmp_path / "metrics.csv", index=False)
    return tmp_path


def run(study: Path, **options) -> corr.CorrelationResult:
    options.setdefault("n_boot", 999)
    options.setdefault("progress", False)
    human = corr.read_human([study / "cifar10.csv", study / "ffhq256.csv"])
    with pytest.warns(UserWarning, match="Test Set"):
        table = corr.read_metric_table(study / "metrics.csv")
    return corr.correlate(human, table, **options)


# --------------------------------------------------------------------------
# Directions


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("FD", "lower"),
        ("fd_inf", "lower"),
        ("FD-inf", "lower"),
        ("KD", "lower"),
        ("FLS_POG", "lower"),
        ("precision", "higher"),
        ("Coverage", "higher"),
        ("AuthPct", "higher"),
        ("FLS", "higher"),
        ("vendi_per_class", "higher"),
        ("C_T", "none"),
        ("my_new_metric", "unknown"),
    ],
)
def test_metric_directions(name, direction):
    assert corr.metric_direction(name) == direction


def test_direction_overrides_win_in_any_spelling():
    assert corr.metric_direction("FD_inf", {"fd-INF": "higher"}) == "higher"
    assert corr.parse_directions(["C_T=lower", " x = NONE"]) == {
        "C_T": "lower",
        "x": "none",
    }
    with pytest.raises(ValueError, match="use one of higher, lower, none"):
        corr.parse_directions(["FD=smaller"])
    with pytest.raises(ValueError, match="METRIC=lower"):
        corr.parse_directions(["FD"])


def test_score_directions():
    assert corr.score_direction("error_rate") == "higher"
    assert corr.score_direction("marginal_error_rate") == "higher"
    assert corr.score_direction("d_prime") == "lower"
    assert corr.score_direction("rt_total_s", "lower") == "lower"
    with pytest.raises(ValueError, match="--score-direction"):
        corr.score_direction("rt_total_s")
    with pytest.raises(ValueError, match="'higher' or 'lower'"):
        corr.score_direction("error_rate", "none")


# --------------------------------------------------------------------------
# Reading


def test_wide_table_becomes_tidy_without_reference_rows(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(
        "dataset,model,FD,precision\n"
        "CIFAR10,ACGAN,1208.26,-\n"
        "CIFAR10,BigGAN,326.66,0.69\n"
        "CIFAR10,Test Set,31.07,0.88\n"
    )
    with pytest.warns(UserWarning, match="Test Set score real data"):
        tidy = corr.read_metric_table(path, encoder="dinov2_vitl14")
    assert list(tidy.columns) == [
        "dataset",
        "model",
        "encoder",
        "weights",
        "metric",
        "value",
    ]
    assert len(tidy) == 4
    assert set(tidy["encoder"]) == {"dinov2_vitl14"}
    acgan = tidy[(tidy["model"] == "ACGAN") & (tidy["metric"] == "precision")]
    assert np.isnan(acgan["value"].iloc[0])


def test_tidy_table_from_analysis_metrics(tmp_path):
    path = tmp_path / "metrics.csv"
    pd.DataFrame(
        {
            "dataset": "cifar10",
            "model": ["a", "a", "b", "b"],
            "encoder": ["dinov2_vitl14", "inception_v3"] * 2,
            "metric": "FD",
            "value": [10.0, 20.0, 30.0, 40.0],
            "n_real": 100,
            "n_generated": 100,
            "weights": ["sha256:ab", "random-init"] * 2,
        }
    ).to_csv(path, index=False)
    tidy = corr.read_metric_table(path)
    assert (
        corr.metric_labels(tidy).tolist()
        == [
            "dinov2_vitl14/FD",
            "inception_v3/FD",
        ]
        * 2
    )
    with pytest.warns(UserWarning, match="--encoder x is ignored"):
        corr.read_metric_table(path, encoder="x")
    # A tidy table without an encoder column takes --encoder.
    path.write_text("dataset,model,metric,value\nc,a,FD,1\n")
    tidy = corr.read_metric_table(path, encoder="dinov2_vitl14")
    assert tidy[["encoder", "weights"]].values.tolist() == [
        ["dinov2_vitl14", "unknown"]
    ]


def test_the_wide_table_of_analysis_metrics_keeps_counts_out(tmp_path):
    path = tmp_path / "metrics_wide.csv"
    path.write_text(
        "dataset,model,encoder,weights,n_real,n_generated,FD,KD\n"
        "cifar10,a,dinov2_vitl14,sha256:ab,500,500,1.0,0.1\n"
        "cifar10,a,dinov2_vitl14,random-init,500,500,2.0,0.2\n"
    )
    tidy = corr.read_metric_table(path)
    assert sorted(tidy["metric"].unique()) == ["FD", "KD"]
    assert corr.metric_labels(tidy).tolist() == [
        "dinov2_vitl14/FD [sha256:ab]",
        "dinov2_vitl14/FD [random-init]",
        "dinov2_vitl14/KD [sha256:ab]",
        "dinov2_vitl14/KD [random-init]",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,FD\na,1\n", "lacks the column\\(s\\) dataset"),
        ("dataset,model,FD,note\nc,a,1,good\n", "note are not numeric"),
        ("dataset,model,metric,value\nc,a,FD,big\n", "'value' must be numeric"),
        ("dataset,model,FD\nc,a,1\nc,a,2\n", "2 rows for the same"),
        ("dataset,model\nc,a\n", "no metric columns"),
    ],
)
def test_bad_metric_tables_are_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        corr.read_metric_table(path)


def test_human_kinds_are_told_apart(study, tmp_path):
    people = corr.read_human(study / "cifar10.csv")
    assert people.kind == "participants"
    assert set(people.table["dataset"]) == {"cifar10"}
    scores = corr.read_human(write_scores(tmp_path / "hs.csv", "cifar10", RATES))
    assert scores.kind == "scores"
    by_model = people.model_scores("error_rate").set_index("model")
    raw = pd.read_csv(study / "cifar10.csv").groupby("model")["err_rt"]
    np.testing.assert_allclose(by_model.loc[MODELS, "value"], raw.mean()[MODELS])
    np.testing.assert_allclose(by_model.loc[MODELS, "sem"], raw.sem()[MODELS])
    with pytest.raises(ValueError, match="mix per-model scores and per-participant"):
        corr.read_human([study / "cifar10.csv", tmp_path / "hs.csv"])


def test_per_trial_exports_are_human_data_too(tmp_path):
    """This project's per-trial export: summarised per participant, then per model."""
    rng = np.random.default_rng(6)
    rows = []
    for m, model in enumerate(MODELS[:4]):
        for p in range(3):
            for t in range(20):
                is_real = t % 2 == 0
                wrong = rng.random() < 0.1 + 0.1 * m
                answer = ("generated" if is_real else "real") if wrong else None
                answer = answer or ("real" if is_real else "generated")
                rows.append(
                    {
                        "participant": f"{model}-p{p}",
                        "model": model,
                        "stimulus": f"s{t}",
                        "is_real": is_real,
                        "kind": "main",
                        "response": answer,
                    }
                )
    trials = pd.DataFrame(rows)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    human = corr.read_human(tmp_path / "trials.csv", dataset="cifar10")
    assert human.kind == "participants"
    trials["error"] = (trials["response"] == "real") != trials["is_real"]
    per_person = trials.groupby(["model", "participant"])["error"].mean()
    want = per_person.groupby("model").mean()
    got = human.model_scores("error_rate").set_index("model")["value"]
    np.testing.assert_allclose(got[want.index], want)
    assert set(human.model_scores("error_rate")["dataset"]) == {"cifar10"}


def test_human_score_errors(study, tmp_path):
    path = write_scores(tmp_path / "hs.csv", "cifar10", RATES)
    human = corr.read_human(path)
    with pytest.raises(ValueError, match="usable columns: error_rate"):
        human.check_score("fooled_rate")
    write_scores(path, "cifar10", {"Model-1": 0.2})  # appended: a repeat
    with pytest.raises(ValueError, match="same dataset and model"):
        corr.read_human(path)


# --------------------------------------------------------------------------
# Matching


def test_matching_ignores_case_and_punctuation_and_lists_the_rest():
    human = pd.DataFrame(
        {
            "dataset": ["cifar10"] * 3 + ["lsun256"],
            "model": ["StyleGAN2-ada", "PFGMPP", "Only-Human", "ct2"],
        }
    )
    table = pd.DataFrame(
        {
            "dataset": ["CIFAR10"] * 3 + ["LSUN-Bedroom"],
            "model": ["stylegan2_ADA", "PFGM++", "Only-Metrics", "Consistency"],
        }
    )
    found = corr.match_tables(human, table)
    assert found.matched[["model", "metrics_model"]].values.tolist() == [
        ["StyleGAN2-ada", "stylegan2_ADA"]
    ]
    listed = set(zip(found.unmatched["side"], found.unmatched["name"], strict=True))
    assert listed == {
        ("human", "PFGMPP"),
        ("human", "Only-Human"),
        ("metrics", "PFGM++"),
        ("metrics", "Only-Metrics"),
        ("human", "lsun256"),
        ("metrics", "LSUN-Bedroom"),
    }


def test_alias_file_pairs_the_rest(tmp_path):
    alias = tmp_path / "aliases.csv"
    alias.write_text(
        "kind,dataset,name,alias\n"
        "dataset,,lsun256,LSUN-Bedroom\n"
        "model,cifar10,PFGMPP,PFGM++\n"
        "model,lsun256,ct2,Consistency\n"
    )
    human = pd.DataFrame(
        {"dataset": ["cifar10", "lsun256"], "model": ["PFGMPP", "ct2"]}
    )
    table = pd.DataFrame(
        {"dataset": ["CIFAR10", "LSUN-Bedroom"], "model": ["PFGM++", "Consistency"]}
    )
    found = corr.match_tables(human, table, Aliases.from_file(alias))
    assert found.unmatched.empty
    assert found.datasets == [("cifar10", "CIFAR10"), ("lsun256", "LSUN-Bedroom")]
    assert found.matched["metrics_model"].tolist() == ["PFGM++", "Consistency"]


def test_alias_scoped_to_one_dataset_does_not_leak():
    aliases = Aliases()
    aliases.models[("lsun256", normalize_name("Consistency"))] = "ct2"
    human = pd.DataFrame({"dataset": ["cifar10"], "model": ["ct2"]})
    table = pd.DataFrame({"dataset": ["cifar10"], "model": ["Consistency"]})
    assert corr.match_tables(human, table, aliases).matched.empty


def test_colliding_names_are_an_error_naming_both():
    human = pd.DataFrame(
        {"dataset": ["c", "c"], "model": ["StyleGAN-XL", "stylegan_xl"]}
    )
    table = pd.DataFrame({"dataset": ["c"], "model": ["StyleGAN-XL"]})
    with pytest.raises(NameMatchError, match="'StyleGAN-XL' and 'stylegan_xl'"):
        corr.match_tables(human, table)


def test_alias_file_errors_name_the_problem(tmp_path):
    bad = tmp_path / "aliases.csv"
    bad.write_text("kind,name\nmodel,a\n")
    with pytest.raises(NameMatchError, match="lacks the column\\(s\\) alias"):
        Aliases.from_file(bad)
    bad.write_text("kind,name,alias\nencoder,a,b\n")
    with pytest.raises(NameMatchError, match="use one of dataset, model"):
        Aliases.from_file(bad)
    bad.write_text("kind,name,alias\nmodel,a,x\nmodel,b,x\n")
    with pytest.raises(NameMatchError, match="already points to 'a'"):
        Aliases.from_file(bad)


# --------------------------------------------------------------------------
# Statistics


def _matched_arrays(result, dataset, label):
    points = result.points[
        (result.points["dataset"] == dataset) & (result.points["label"] == label)
    ]
    keep = points["metric_value"].notna()
    return (
        points.loc[keep, "human_value"].to_numpy(),
        points.loc[keep, "metric_value"].to_numpy(),
    )


def test_point_estimates_equal_scipy_on_the_matched_pairs(study):
    result = run(study)
    assert len(result.matched) == 16
    raw = pd.read_csv(study / "cifar10.csv").groupby("model")["err_rt"].mean()
    table = pd.read_csv(study / "metrics.csv")
    for row in result.correlations.itertuples():
        human, metric = _matched_arrays(result, row.dataset, row.label)
        if row.dataset == "cifar10":
            # The human side is the published mean of participants' error rates.
            names = result.points.loc[
                (result.points["dataset"] == "cifar10")
                & (result.points["label"] == row.label),
                "model",
            ]
            np.testing.assert_allclose(human, raw[names].to_numpy())
            assert (
                metric.tolist()
                == table.loc[table["dataset"] == "CIFAR10", row.label]
                .iloc[:10]
                .tolist()
            )
        scipy_fn = {
            "spearman": stats.spearmanr,
            "kendall": stats.kendalltau,
            "pearson": stats.pearsonr,
        }[row.method]
        want = scipy_fn(human, metric)
        assert row.coefficient == pytest.approx(want.statistic, abs=1e-12)
        assert row.p_val == pytest.approx(want.pvalue, rel=1e-9)


def test_sign_convention(study):
    frame = run(study, methods=["spearman"]).correlations.set_index(
        ["dataset", "metric"]
    )
    fd = frame.loc[("cifar10", "FD")]
    assert fd["metric_direction"] == "lower" and fd["score_direction"] == "higher"
    assert fd["coefficient"] < -0.8  # raw: lower FD, higher error rate
    assert fd["sign"] == -1 and fd["agreement"] == -fd["coefficient"]
    assert fd["agreement_ci_low"] == pytest.approx(-fd["ci_high"])
    assert fd["agreement_ci_high"] == pytest.approx(-fd["ci_low"])
    precision = frame.loc[("cifar10", "precision")]
    assert precision["sign"] == 1 and precision["agreement"] == precision["coefficient"]
    ct = frame.loc[("cifar10", "C_T")]
    assert ct["metric_direction"] == "none"
    assert np.isnan(ct["sign"]) and np.isnan(ct["agreement"])
    assert not np.isnan(ct["coefficient"])


def test_same_seed_same_result_and_another_seed_differs(study):
    first = run(study, seed=5)
    again = run(study, seed=5)
    other = run(study, seed=6)
    pd.testing.assert_frame_equal(first.correlations, again.correlations)
    pd.testing.assert_frame_equal(first.comparisons, again.comparisons)
    assert not np.allclose(
        first.correlations["ci_low"], other.correlations["ci_low"], equal_nan=True
    )
    # Point estimates do not depend on the seed.
    np.testing.assert_array_equal(
        first.correlations["coefficient"], other.correlations["coefficient"]
    )


def test_interval_contains_the_estimate_for_reasonable_data(study):
    result = run(study, n_boot=1999)
    rows = result.correlations[result.correlations["error"] == ""]
    assert (rows["resampling"] == "models+participants").all()
    assert (rows["ci_low"] <= rows["coefficient"]).all()
    assert (rows["coefficient"] <= rows["ci_high"]).all()
    assert (rows["ci_low"] < rows["ci_high"]).all()
    assert (rows["n_boot"] >= 1990).all()


def test_perfectly_monotone_case_gives_one(tmp_path):
    scores = dict(zip(MODELS, np.linspace(0.05, 0.4, 10), strict=True))
    human = corr.read_human(write_scores(tmp_path / "hs.csv", "cifar10", scores))
    values = np.array(list(scores.values()))
    table = pd.DataFrame(
        {
            "dataset": "cifar10",
            "model": MODELS,
            "encoder": "dinov2_vitl14",
            "weights": "sha256:00",
            "metric": "FD",
            "value": 1000 - 2000 * values,  # linear, so Pearson is 1 too
        }
    )
    result = corr.correlate(human, table, n_boot=999, progress=False)
    rows = result.correlations
    assert (rows["resampling"] == "models").all()
    np.testing.assert_allclose(rows["agreement"], 1.0, atol=1e-12)
    np.testing.assert_allclose(rows["coefficient"], -1.0, atol=1e-12)
    np.testing.assert_allclose(rows[["ci_low", "ci_high"]], -1.0, atol=1e-12)
    np.testing.assert_allclose(
        rows[["agreement_ci_low", "agreement_ci_high"]], 1.0, atol=1e-12
    )


def test_perfectly_monotone_participants_give_one(tmp_path):
    # Every participant of a model has the same error counts, so resampling
    # participants cannot change the order of the models.
    rows = []
    for i, model in enumerate(MODELS):
        for j in range(5):
            fake = real = 5 + 3 * i
            rows.append(
                {
                    "id": f"p{i}_{j}",
                    "model": model,
                    "num_correct": 200 - fake - real,
                    "err_rt": (fake + real) / 200,
                    "f_err_rt": fake / 100,
                    "r_err_rt": real / 100,
                    "r_ans_rt": (100 - real + fake) / 200,
                    "resp_time": 1.0,
                    "f_resp_time": 0.5,
                    "r_resp_time": 0.5,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "cifar10.csv", index=False)
    human = corr.read_human(tmp_path / "cifar10.csv")
    table = pd.DataFrame(
        {"dataset": "cifar10", "model": MODELS, "precision": np.arange(10.0) ** 2}
    )
    table = table.melt(id_vars=["dataset", "model"], var_name="metric")
    table["encoder"] = table["weights"] = "unknown"
    result = corr.correlate(
        human, table, methods=["spearman", "kendall"], n_boot=500, progress=False
    )
    rows = result.correlations
    assert (rows["resampling"] == "models+participants").all()
    np.testing.assert_allclose(rows[["coefficient", "ci_low", "ci_high"]], 1.0)


def test_bootstrap_equals_a_scipy_loop_over_the_same_resamples(tmp_path):
    """Each resample's coefficient is scipy's on that resample (models only)."""
    rng = np.random.default_rng(8)
    scores = dict(zip(MODELS, rng.uniform(0.1, 0.4, 10), strict=True))
    human = corr.read_human(write_scores(tmp_path / "hs.csv", "cifar10", scores))
    # Rounded values give ties inside resamples, as real metric tables do.
    metric = np.round(np.array(list(scores.values())) * 10 + rng.normal(0, 1, 10))
    table = pd.DataFrame(
        {
            "dataset": "cifar10",
            "model": MODELS,
            "encoder": "e",
            "weights": "w",
            "metric": "precision",
            "value": metric,
        }
    )
    n_boot = 1200  # two blocks, the second partial
    result = corr.correlate(human, table, n_boot=n_boot, seed=3, progress=False)
    x = np.array(list(scores.values()))
    loops = {"spearman": [], "kendall": [], "pearson": []}
    for number, block in enumerate(resample_blocks(n_boot)):
        stream = dataset_rng(3, "cifar10", number)
        slots = stream.integers(0, 10, size=(block.stop - block.start, 10))
        for row in slots:
            if np.ptp(x[row]) == 0 or np.ptp(metric[row]) == 0:
                continue
            loops["spearman"].append(stats.spearmanr(x[row], metric[row]).statistic)
            loops["kendall"].append(stats.kendalltau(x[row], metric[row]).statistic)
            loops["pearson"].append(stats.pearsonr(x[row], metric[row]).statistic)
    for row in result.correlations.itertuples():
        draws = np.array(loops[row.method])
        assert row.n_boot == len(draws)
        assert row.ci_low == pytest.approx(np.quantile(draws, 0.025), abs=1e-12)
        assert row.ci_high == pytest.approx(np.quantile(draws, 0.975), abs=1e-12)


def test_too_few_matched_models_is_an_error_for_that_dataset_only(study):
    table = pd.read_csv(study / "metrics.csv")
    keep = (table["dataset"] == "CIFAR10") | table["model"].isin(MODELS[:2])
    table[keep].to_csv(study / "metrics.csv", index=False)
    result = run(study)
    assert result.errors == [
        "dataset ffhq256: only 2 matched model(s), at least 3 are needed; "
        "no correlations for it"
    ]
    ffhq = result.correlations[result.correlations["dataset"] == "ffhq256"]
    assert len(ffhq) == 1 and "only 2 matched" in ffhq["error"].iloc[0]
    assert np.isnan(ffhq["coefficient"].iloc[0])
    cifar = result.correlations[result.correlations["dataset"] == "cifar10"]
    assert len(cifar) == 9 and (cifar["error"] == "").all()
    assert "Model-2" in set(result.unmatched["name"])


def test_metric_with_too_few_values_is_an_error_row(study):
    table = pd.read_csv(study / "metrics.csv")
    table.loc[(table["dataset"] == "FFHQ256") & (table.index % 6 > 1), "C_T"] = np.nan
    table.to_csv(study / "metrics.csv", index=False)
    result = run(study, methods=["spearman"])
    assert any("metric C_T has values for only 2" in e for e in result.errors)
    row = result.correlations.set_index(["dataset", "metric"]).loc[("ffhq256", "C_T")]
    assert row["n_models"] == 2 and "at least 3" in row["error"]


def test_partly_missing_metric_warns_and_uses_the_rest(study):
    table = pd.read_csv(study / "metrics.csv")
    table.loc[0, "precision"] = np.nan
    table.to_csv(study / "metrics.csv", index=False)
    human = corr.read_human([study / "cifar10.csv", study / "ffhq256.csv"])
    with pytest.warns(UserWarning, match="Test Set"):
        metrics = corr.read_metric_table(study / "metrics.csv")
    with pytest.warns(UserWarning, match="no value for Model-0"):
        result = corr.correlate(human, metrics, n_boot=200, progress=False)
    row = result.correlations.set_index(["dataset", "metric", "method"]).loc[
        ("cifar10", "precision", "spearman")
    ]
    assert row["n_models"] == 9
    human_values, metric_values = _matched_arrays(result, "cifar10", "precision")
    want = stats.spearmanr(human_values, metric_values).statistic
    assert row["coefficient"] == pytest.approx(want)


def test_bh_columns_equal_scipy(study):
    result = run(study)
    for _, group in result.correlations.groupby(["dataset", "method"]):
        np.testing.assert_allclose(
            group["p_val_bh"], stats.false_discovery_control(group["p_val"])
        )
    for _, group in result.comparisons.groupby(["dataset", "method"]):
        np.testing.assert_allclose(
            group["p_val_bh"], stats.false_discovery_control(group["p_val"])
        )


def test_paired_comparisons(study):
    table = pd.read_csv(study / "metrics.csv")
    table["FD_copy"] = table["FD"]
    # A precision that calls the least realistic models the best.
    cifar = table["dataset"] == "CIFAR10"
    table.loc[cifar, "precision"] = np.linspace(0.9, 0.5, cifar.sum())
    table.to_csv(study / "metrics.csv", index=False)
    result = run(study, methods=["spearman"], directions={"FD_copy": "lower"})
    comp = result.comparisons.set_index(["dataset", "metric_a", "metric_b"])
    same = comp.loc[("cifar10", "FD", "FD_copy")]
    # Identical metrics on shared resamples: the difference is exactly zero.
    assert same["difference"] == 0 and same["ci_low"] == same["ci_high"] == 0
    assert same["p_val"] == 1
    better = comp.loc[("cifar10", "FD", "precision")]
    assert better["criterion"] == "agreement"
    assert better["difference"] == pytest.approx(better["value_a"] - better["value_b"])
    assert better["ci_low"] > 0 and better["p_val"] < 0.05
    # C_T has no better end, so its pairs compare absolute coefficients.
    assert comp.loc[("cifar10", "FD", "C_T"), "criterion"] == "abs_coefficient"
    signed = result.correlations.set_index(["dataset", "metric"])
    assert better["value_a"] == pytest.approx(
        signed.loc[("cifar10", "FD"), "agreement"]
    )
    absolute = run(study, methods=["spearman"], compare="abs").comparisons
    assert set(absolute["criterion"]) == {"abs_coefficient"}


def test_a_dataset_does_not_change_with_the_others(study):
    both = run(study, seed=2).correlations
    human = corr.read_human(study / "cifar10.csv")
    with pytest.warns(UserWarning, match="Test Set"):
        table = corr.read_metric_table(study / "metrics.csv")
    alone = corr.correlate(human, table, n_boot=999, seed=2, progress=False)
    cifar = both[both["dataset"] == "cifar10"].reset_index(drop=True)
    pd.testing.assert_frame_equal(cifar, alone.correlations)


def test_no_bootstrap_gives_estimates_without_intervals(study):
    result = run(study, n_boot=0, methods=["kendall"])
    rows = result.correlations
    assert rows["coefficient"].notna().all() and rows["p_val"].notna().all()
    assert rows[["ci_low", "ci_high", "p_val_boot"]].isna().all().all()
    assert (rows["n_boot"] == 0).all()
    assert result.comparisons.empty


def test_bad_arguments(study):
    human = corr.read_human(study / "cifar10.csv")
    table = pd.DataFrame(columns=["dataset", "model", "encoder", "weights", "metric"])
    table["value"] = []
    for kwargs, message in [
        ({"methods": ["rho"]}, "allowed: spearman"),
        ({"compare": "best"}, "'signed' or 'abs'"),
        ({"n_boot": -1}, ">= 0"),
        ({"confidence": 95}, "strictly between"),
        ({"score": "speed"}, "no known direction"),
    ]:
        with pytest.raises(ValueError, match=message):
            corr.correlate(human, table, **kwargs)


# --------------------------------------------------------------------------
# The command


def invoke(*args):
    runner = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return runner.invoke(main, ["correlate", *map(str, args)])


def test_command_writes_every_output(study):
    out = study / "out"
    result = invoke(
        study / "cifar10.csv",
        study / "ffhq256.csv",
        study / "metrics.csv",
        "--bootstrap",
        "300",
        "--encoder",
        "dinov2_vitl14",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "warning: metric table" in result.stderr  # Test Set row left out
    assert "dinov2_vitl14/FD" in result.stdout
    correlations = pd.read_csv(out / "correlations.csv")
    assert list(correlations.columns) == list(corr.CORRELATION_COLUMNS)
    assert len(correlations) == 2 * 3 * 3
    assert list(pd.read_csv(out / "comparisons.csv").columns) == list(
        corr.COMPARISON_COLUMNS
    )
    assert list(pd.read_csv(out / "unmatched.csv").columns) == list(
        corr.UNMATCHED_COLUMNS
    )
    assert len(pd.read_csv(out / "matched.csv")) == 16
    report = (out / "report.html").read_text()
    # Self-contained: plotly.js inline, no external script.
    assert re.search(r"<script[^>]+src=", report) is None
    assert "Plotly.newPlot" in report and len(report) > 1_000_000
    assert "MODEL_3" in report and "Sign convention" in report


def test_command_lists_unmatched_and_fails_a_short_dataset(study):
    table = pd.read_csv(study / "metrics.csv")
    keep = (table["dataset"] == "CIFAR10") | table["model"].isin(MODELS[:2])
    table[keep].to_csv(study / "metrics.csv", index=False)
    out = study / "out"
    result = invoke(
        study / "cifar10.csv",
        study / "ffhq256.csv",
        study / "metrics.csv",
        "--bootstrap",
        "100",
        "--method",
        "spearman",
        "--out",
        out,
    )
    assert result.exit_code == 1
    assert "error: dataset ffhq256: only 2 matched model(s)" in result.stderr
    assert "note: unmatched model in HUMAN: ffhq256 / Model-2" in result.stderr
    unmatched = pd.read_csv(out / "unmatched.csv")
    assert set(unmatched["name"]) == {f"Model-{i}" for i in range(2, 6)}
    # The other dataset is still computed and written.
    correlations = pd.read_csv(out / "correlations.csv")
    assert (
        correlations.loc[correlations["dataset"] == "cifar10", "coefficient"]
        .notna()
        .all()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "spearman,rho"], "allowed: spearman, kendall, pearson"),
        (["--score", "fooled"], "usable columns"),
        (["--direction", "FD=smaller"], "use one of higher, lower, none"),
        (["--bootstrap", "-5"], "-5 is not in the range"),
        (["--compare", "best"], "'signed'"),
    ],
)
def test_command_usage_errors_exit_2(study, args, message):
    result = invoke(study / "cifar10.csv", study / "metrics.csv", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_command_input_errors_exit_1(study, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,model,FD,note\nc,a,1,x\n")
    result = invoke(study / "cifar10.csv", bad)
    assert result.exit_code == 1
    assert "note are not numeric" in result.stderr
    clash = tmp_path / "clash.csv"
    clash.write_text("dataset,model,FD\ncifar10,Model-1,1\ncifar10,model_1,2\n")
    result = invoke(study / "cifar10.csv", clash)
    assert result.exit_code == 1
    assert "name matching failed" in result.stderr and "'model_1'" in result.stderr
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("kind,name\nmodel,x\n")
    result = invoke(study / "cifar10.csv", study / "metrics.csv", "--alias", aliases)
    assert result.exit_code == 1
    assert "lacks the column(s) alias" in result.stderr


def test_command_help_states_the_sign_convention():
    result = CliRunner().invoke(main, ["correlate", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "lower is better for FD, FD_inf, KD" in text
    assert "positive agreement means the metric ranks models as people do" in text


def test_models_without_a_score_are_left_out_with_a_warning(tmp_path):
    scores = dict(zip(MODELS, np.linspace(0.05, 0.4, 10), strict=True))
    path = write_scores(tmp_path / "hs.csv", "cifar10", scores)
    frame = pd.read_csv(path)
    frame.loc[3, "error_rate"] = np.nan
    frame.to_csv(path, index=False)
    human = corr.read_human(path)
    table = pd.DataFrame(
        {"dataset": "cifar10", "model": MODELS, "metric": "FD", "value": 1.0}
    )
    table["value"] = -np.arange(10.0)
    table["encoder"] = table["weights"] = "unknown"
    with pytest.warns(UserWarning, match="1 models have no error_rate .*Model-3"):
        result = corr.correlate(human, table, n_boot=200, progress=False)
    assert (result.correlations["n_models"] == 9).all()
    np.testing.assert_allclose(result.correlations["agreement"], 1.0)
    assert "Model-3" in set(result.unmatched["name"])


def _fd_rows(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "correlations.csv")
    return table[table["metric"] == "FD"].reset_index(drop=True)


def test_infinite_metric_values_are_missing_values_named_as_infinite(study):
    """+-inf in a metric table counts as missing, with the missing-value warning."""
    table = pd.read_csv(study / "metrics.csv")
    table.loc[[0, 1], "FD"] = np.nan
    table.to_csv(study / "missing.csv", index=False)
    table.loc[0, "FD"], table.loc[1, "FD"] = np.inf, -np.inf
    table.to_csv(study / "infinite.csv", index=False)
    assert "inf" in (study / "infinite.csv").read_text()
    outputs = {}
    for name in ("missing", "infinite"):
        out = study / f"out_{name}"
        result = invoke(
            study / "cifar10.csv",
            study / f"{name}.csv",
            "--bootstrap",
            "300",
            "--out",
            out,
        )
        assert result.exit_code == 0, result.output
        outputs[name] = (result.stderr, _fd_rows(out))
    stderr, rows = outputs["infinite"]
    assert (
        "warning: dataset cifar10: metric FD has no value for Model-0 (infinite), "
        "Model-1 (infinite); its correlations leave them out\n" in stderr
    )
    assert "invalid value" not in stderr
    assert (
        "warning: dataset cifar10: metric FD has no value for Model-0, Model-1;"
        in (outputs["missing"][0])
    )
    assert (rows["n_models"] == 8).all() and rows["coefficient"].notna().all()
    pd.testing.assert_frame_equal(rows, outputs["missing"][1], check_exact=True)


def test_a_metric_with_only_infinite_values_is_skipped_by_name(study):
    table = pd.read_csv(study / "metrics.csv")
    table.loc[table["dataset"] == "CIFAR10", "FD"] = np.inf
    table.to_csv(study / "metrics.csv", index=False)
    result = invoke(study / "cifar10.csv", study / "metrics.csv", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "note: dataset cifar10: no values for FD (infinite); skipped\n" in (
        result.stderr
    )


def test_infinite_human_scores_are_left_out_with_a_warning(tmp_path):
    scores = dict(zip(MODELS, np.linspace(0.05, 0.4, 10), strict=True))
    path = write_scores(tmp_path / "hs.csv", "cifar10", scores)
    frame = pd.read_csv(path)
    frame.loc[3, "error_rate"] = np.inf
    frame.loc[5, "error_rate"] = np.nan
    frame.to_csv(path, index=False)
    human = corr.read_human(path)
    assert np.isinf(human.table.loc[3, "error_rate"])
    table = pd.DataFrame(
        {"dataset": "cifar10", "model": MODELS, "metric": "FD", "value": 1.0}
    )
    table["value"] = -np.arange(10.0)
    table["encoder"] = table["weights"] = "unknown"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = corr.correlate(human, table, n_boot=200, progress=False)
    assert [str(w.message) for w in caught] == [
        "1 models have no error_rate and are left out (e.g. cifar10 / Model-5)",
        "1 models have an infinite error_rate and are left out (e.g. cifar10 / "
        "Model-3)",
    ]
    rows = result.correlations
    assert (rows["n_models"] == 8).all()
    np.testing.assert_allclose(rows["agreement"], 1.0)
    np.testing.assert_allclose(rows[["ci_low", "ci_high"]], -1.0, atol=1e-12)
    assert {"Model-3", "Model-5"} <= set(result.unmatched["name"])


def test_an_undefined_coefficient_has_no_interval(tmp_path):
    """Equal model means, varied participants: no estimate, so no interval."""
    rows = []
    errors = {"A": (25, 75), "B": (50, 50), "C": (75, 25)}
    for model, counts in errors.items():
        for j, n in enumerate(counts):
            rows.append(
                {
                    "id": f"{model}{j}",
                    "model": model,
                    "num_correct": 200 - 2 * n,
                    "err_rt": n / 100,
                    "f_err_rt": n / 100,
                    "r_err_rt": n / 100,
                    "r_ans_rt": 0.5,
                    "resp_time": 1.0,
                    "f_resp_time": 0.5,
                    "r_resp_time": 0.5,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "cifar10.csv", index=False)
    pd.DataFrame(
        {"dataset": "cifar10", "model": list(errors), "FD": [3.0, 2, 1]}
    ).to_csv(tmp_path / "metrics.csv", index=False)
    result = invoke(
        tmp_path / "cifar10.csv",
        tmp_path / "metrics.csv",
        "--bootstrap",
        "200",
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert (
        "note: dataset cifar10: the spearman coefficient of FD is undefined: the "
        "human scores or the metric values are constant over the matched models\n"
        in result.stderr
    )
    table = pd.read_csv(tmp_path / "out" / "correlations.csv")
    assert len(table) == 3 and table["coefficient"].isna().all()
    for column in ("ci_low", "ci_high", "agreement_ci_low", "p_val_boot"):
        assert table[column].isna().all(), column
    assert (table["n_boot"] == 0).all()
    assert table["error"].str.contains("is undefined").all()


def test_no_false_note_when_the_estimate_equals_its_bound_up_to_rounding(tmp_path):
    """Kendall's tau of 8 ordered models is -0.9999999999999998, its resamples -1."""
    models = MODELS[:8]
    scores = dict(zip(models, np.linspace(0.05, 0.4, 8), strict=True))
    write_scores(tmp_path / "hs.csv", "cifar10", scores)
    values = 1000 - 2000 * np.array(list(scores.values()))
    pd.DataFrame({"dataset": "cifar10", "model": models, "FD": values}).to_csv(
        tmp_path / "metrics.csv", index=False
    )
    result = invoke(
        tmp_path / "hs.csv",
        tmp_path / "metrics.csv",
        "--bootstrap",
        "500",
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "correlations.csv").set_index("method")
    # The situation of the report: the estimate lies an ulp above its bound.
    assert table.loc["kendall", "coefficient"] == -0.9999999999999998
    assert table.loc["kendall", "ci_high"] == -1.0
    assert "leaves out" not in result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("resampling", "reason"),
    [
        (
            "models",
            "only models are resampled (the human scores are one value per "
            "model); near +-1 their bootstrap distribution is skewed and "
            "repeated models tie, so a percentile interval can miss its estimate",
        ),
        (
            "models+participants",
            "models and the participants within them are resampled; the "
            "participant noise this adds pulls coefficients near +-1 toward 0",
        ),
    ],
)
def test_an_estimate_outside_its_interval_is_noted_with_what_was_resampled(
    resampling, reason
):
    rows = pd.DataFrame(
        {
            "label": ["FD", "KD", "IS"],
            "method": "kendall",
            "coefficient": [-1.0, -1.0 + 1e-15, -0.99],
            "ci_low": [-0.98, -1.0, -0.97],
            "ci_high": [-0.5, -1.0, -0.5],
            "ci_level": 0.95,
            "resampling": resampling,
        }
    )
    notes = corr._outside_interval("lsun256", rows)
    assert notes == [
        f"dataset lsun256: the 95% interval of {label} (kendall) is [{low}, -0.500] "
        f"and leaves out the estimate {estimate}: {reason}"
        for label, low, estimate in (
            ("FD", "-0.980", "-1.000"),
            ("IS", "-0.970", "-0.990"),
        )
    ]
