"""``analysis metrics`` over the real realism-bench images (slow).

Every model folder of both datasets against the dataset's real folder, with
the pixels encoder and a randomly initialised DINOv2 ViT-S/14 (its registry
preprocessing: 224 x 224 bicubic). Random weights make the DINOv2 values
meaningless; the run checks that the whole pipeline holds at this size and
writes a table ``analysis correlate`` can read. Timing on the 2-core
development machine: see benchmarks/metrics/README.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from analysis.cli import main
from analysis.metrics.encoders import build_encoder
from analysis.metrics.features import extract_features, list_images
from analysis.metrics.table import TABLE_COLUMNS, read_metric_table, to_wide

# Each dataset's run extracts DINOv2 features of up to 1,000 images at 224 x 224
# on the CPU; under load from other work that outlasts the suite's 600 s limit.
pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.timeout(2400)]

METRICS = ["FD", "FD_inf", "KD", "precision", "recall", "density", "coverage"]
METRICS += ["vendi", "AuthPct"]


@pytest.fixture(scope="module")
def bench(shared_data):
    root = shared_data / "realism-bench"
    if not root.is_dir():
        pytest.skip("realism-bench not found")
    return root


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet256"])
def test_metric_table_over_realism_bench(bench, dataset, tmp_path) -> None:
    folders = sorted(p for p in (bench / dataset).iterdir() if p.is_dir())
    models = [p.name for p in folders if p.name != "real"]
    args = [
        str(bench / dataset / "real"),
        *map(str, (p for p in folders if p.name != "real")),
    ]
    args += ["-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    args += ["-e", "pixels", "-e", "dinov2_vits14", "--random-init", "--quiet"]
    args += ["--batch-size", "64", "--workers", "2", "--prdc-k", "2"]
    args += ["--too-few", "skip", "--kd-subsets", "20"]
    for metric in METRICS:
        args += ["-m", metric]

    result = CliRunner().invoke(main, ["metrics", *args])
    assert result.exit_code == 0, result.output

    tidy = read_metric_table(tmp_path / "out" / "metrics.csv")
    assert tuple(tidy.columns) == TABLE_COLUMNS
    assert sorted(set(tidy.model)) == sorted(models)
    assert set(tidy.dataset) == {dataset}
    assert set(zip(tidy.encoder, tidy.weights, strict=True)) == {
        ("pixels", "none"),
        ("dinov2_vits14", "random-init"),
    }
    # FD_inf needs 10 generated images: models with fewer are left out with a
    # warning (ImageNet folders hold 3 to 12), every other metric is there
    counts = dict(tidy.groupby("model")["n_generated"].max())
    for model in models:
        rows = tidy[tidy.model == model]
        expected = set(METRICS) - ({"FD_inf"} if counts[model] < 10 else set())
        for encoder in ("pixels", "dinov2_vits14"):
            assert set(rows[rows.encoder == encoder].metric) == expected, model
    n_real = len(list_images(bench / dataset / "real"))
    assert tidy[tidy.metric == "FD"]["n_real"].eq(n_real).all()

    wide = pd.read_csv(tmp_path / "out" / "metrics_wide.csv")
    assert len(wide) == 2 * len(models)
    pd.testing.assert_frame_equal(
        wide, to_wide(tidy), check_dtype=False, check_exact=False, rtol=1e-15
    )
    _correlate_reads(tmp_path, dataset, models, tidy)


def _correlate_reads(tmp_path, dataset, models, tidy) -> None:
    """``analysis correlate`` takes both tables as they were written."""
    from analysis.correlate import read_metric_table as correlate_reads

    for name in ("metrics.csv", "metrics_wide.csv"):
        table = correlate_reads(tmp_path / "out" / name)
        assert set(table.model) == set(models), name
        # the wide table has an empty cell where the tidy one has no row
        assert len(table.dropna(subset=["value"])) == len(tidy), name

    # No human data exists for these folders: placeholder error rates (one per
    # model, spread over 0.1-0.4) only show that the run goes through.
    rates = np.linspace(0.1, 0.4, len(models))
    human = tmp_path / "human_scores.csv"
    pd.DataFrame(
        {
            "dataset": dataset,
            "model": models,
            "n_participants": 20,
            "n_trials": 2000,
            "error_rate": rates,
            "error_rate_sem": 0.01,
        }
    ).to_csv(human, index=False)
    out = tmp_path / "correlate"
    metrics = str(tmp_path / "out" / "metrics.csv")
    args = ["correlate", str(human), metrics, "--bootstrap", "200", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    correlations = pd.read_csv(out / "correlations.csv")
    assert set(correlations.encoder) == {"pixels", "dinov2_vits14"}
    fd = correlations[correlations.metric == "FD"]
    assert len(fd) == 2 * 3 and fd["coefficient"].notna().all()


def test_full_vits14_features_do_not_depend_on_batch_size(bench) -> None:
    encoder = build_encoder("dinov2_vits14", random_init=True, seed=0)
    folder = bench / "imagenet256" / "real"
    paths = list_images(folder)[:32]
    one = extract_features(encoder, folder, paths, batch_size=1, workers=0)
    many = extract_features(encoder, folder, paths, batch_size=32, workers=2)
    np.testing.assert_allclose(one["features"], many["features"], rtol=0, atol=1e-5)
