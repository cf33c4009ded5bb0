"""``analysis metrics``: the command end to end, and its errors.

The runs use the ``pixels`` encoder (no network, no weights) on small image
folders made here, so they are quick; the metric values themselves are
checked against reference formulas in the other test_metrics_* files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")

from analysis.cli import main
from analysis.metrics.compute import compute_metrics
from analysis.metrics.featureset import (
    FeatureSet,
    load_feature_file,
    save_feature_file,
)
from analysis.metrics.table import TABLE_COLUMNS, read_metric_table

pytestmark = pytest.mark.torch


def make_folder(folder: Path, count: int, shift: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 200, size=(32, 32, 3)) + shift
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "toyset"
    make_folder(root / "real", 40, 0, 0)
    make_folder(root / "good", 24, 0, 1)
    make_folder(root / "bright", 24, 50, 2)
    make_folder(root / "tiny", 3, 0, 3)
    make_folder(root / "heldout", 30, 0, 4)
    return root


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["metrics", *args])
    return result.exit_code, result.output


def common(tmp_path: Path) -> list[str]:
    return [
        "-e",
        "pixels",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
        "--workers",
        "0",
    ]


def test_writes_tidy_and_wide_tables(bench, tmp_path) -> None:
    out = tmp_path / "out"
    code, output = run(
        str(bench / "real"),
        str(bench / "good"),
        f"brightened={bench / 'bright'}",
        "-o",
        str(out),
        *common(tmp_path),
        "--kd-subsets",
        "10",
    )
    assert code == 0, output
    tidy = read_metric_table(out / "metrics.csv")
    assert tuple(tidy.columns) == TABLE_COLUMNS
    assert set(tidy["model"]) == {"good", "brightened"}
    assert set(tidy["dataset"]) == {"toyset"}  # the real folder's parent
    assert set(tidy["weights"]) == {"none"}
    fd = tidy[tidy.metric == "FD"].set_index("model")["value"]
    assert fd["good"] < fd["brightened"]
    vendi = tidy[tidy.metric == "vendi"].iloc[0]
    assert (vendi.n_real, vendi.n_generated) == (0, 24)
    assert tidy[tidy.metric == "KD"]["n_real"].eq(40).all()

    wide = pd.read_csv(out / "metrics_wide.csv")
    assert len(wide) == 2 and "FD_inf" in wide.columns


def test_matches_the_python_api_and_feature_files(bench, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["-m", "FD", "-m", "KD", "-m", "precision", "--kd-subsets", "5"]
    code, output = run(
        str(bench / "real"),
        str(bench / "good"),
        "-o",
        str(out),
        "--save-features",
        *args,
        *common(tmp_path),
    )
    assert code == 0, output
    real = load_feature_file(out / "features" / "real__pixels.npz")
    good = load_feature_file(out / "features" / "good__pixels.npz")
    api = compute_metrics(
        real,
        {"good": good},
        metrics=["FD", "KD", "precision"],
        dataset="toyset",
        encoder="pixels",
        weights="none",
        kd_subsets=5,
    )
    cli = read_metric_table(out / "metrics.csv")
    pd.testing.assert_frame_equal(cli, api)

    # feature files as inputs give the same table
    again = tmp_path / "again"
    code, output = run(
        str(out / "features" / "real__pixels.npz"),
        str(out / "features" / "good__pixels.npz"),
        "-o",
        str(again),
        *args,
    )
    assert code == 0, output
    pd.testing.assert_frame_equal(read_metric_table(again / "metrics.csv"), cli)


def test_shards_then_merge(bench, tmp_path) -> None:
    out = tmp_path / "out"
    for i in range(2):
        code, output = run(
            str(bench / "real"), "-o", str(out), "--shard", f"{i}/2", *common(tmp_path)
        )
        assert code == 0, output
    shards = sorted((out / "features").glob("*shard*.npz"))
    assert len(shards) == 2
    code, output = run("--merge-shards", "-o", str(tmp_path / "m"), *map(str, shards))
    assert code == 0, output
    merged = load_feature_file(tmp_path / "m" / "features" / "real__pixels.npz")

    code, _ = run(
        str(bench / "real"),
        str(bench / "good"),
        "-o",
        str(tmp_path / "whole"),
        "-m",
        "FD",
        "--save-features",
        *common(tmp_path),
    )
    whole = load_feature_file(tmp_path / "whole" / "features" / "real__pixels.npz")
    assert merged.paths == whole.paths
    np.testing.assert_array_equal(merged.features, whole.features)


def test_test_set_metrics(bench, tmp_path) -> None:
    code, output = run(
        str(bench / "real"),
        str(bench / "good"),
        "--test",
        str(bench / "heldout"),
        "-m",
        "C_T",
        "-m",
        "FLS",
        "--ct-cells",
        "1",
        "--fls-steps",
        "20",
        "-o",
        str(tmp_path / "out"),
        *common(tmp_path),
    )
    assert code == 0, output
    tidy = read_metric_table(tmp_path / "out" / "metrics.csv")
    assert set(tidy.metric) == {"C_T", "FLS"}
    assert tidy["n_real"].eq(70).all()  # train plus test images


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["-e", "inception"], 2, "known: inception_v3_fid"),
        (["-e", "simclr"], 2, "not available"),
        (["-e", "pixels", "-m", "FID"], 2, "known: FD, FD_inf"),
        (["-e", "pixels", "--shard", "2/2"], 2, "0 <= i < n"),
        (["-e", "dinov2_vits14"], 1, "needs weights"),
        (["-e", "pixels", "-m", "C_T"], 1, "need a held-out test set"),
        (["-e", "pixels", "-m", "IS"], 1, "IS needs class logits"),
    ],
)
def test_usage_and_input_errors(bench, tmp_path, extra, code, message) -> None:
    got, output = run(
        str(bench / "real"),
        str(bench / "good"),
        "-o",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
        *extra,
    )
    assert got == code, output
    assert message in output


def test_too_few_images_are_named_or_skipped(bench, tmp_path) -> None:
    base = [str(bench / "real"), str(bench / "tiny"), "-o", str(tmp_path / "o")]
    code, output = run(*base, *common(tmp_path), "-m", "FD", "-m", "precision")
    assert code == 1
    assert "precision needs at least 6 generated samples; model 'tiny' has 3" in output

    code, output = run(
        *base, *common(tmp_path), "-m", "FD", "-m", "precision", "--too-few", "skip"
    )
    assert code == 0, output
    assert "warning: left out: precision" in output
    tidy = read_metric_table(tmp_path / "o" / "metrics.csv")
    assert list(tidy.metric) == ["FD"]


def test_empty_and_unreadable_inputs(bench, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = run(str(bench / "real"), str(empty), "-o", str(tmp_path / "o"))
    assert code == 1 and "holds no images" in output

    code, output = run(str(bench / "real"), str(tmp_path / "nope"), "-o", "o")
    assert code == 2 and "does not exist" in output

    code, output = run(str(bench / "real"), "-o", str(tmp_path / "o"))
    assert code == 2 and "at least one generated set" in output


def test_bad_feature_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    real = save_feature_file(
        tmp_path / "real.npz", FeatureSet(rng.normal(size=(20, 4)), [])
    )
    wide = save_feature_file(
        tmp_path / "wide.npz", FeatureSet(rng.normal(size=(20, 5)), [])
    )
    nan = rng.normal(size=(20, 4))
    nan[3, 1] = np.nan
    bad = save_feature_file(tmp_path / "nan.npz", FeatureSet(nan, []))
    base = ["-o", str(tmp_path / "o"), "-e", "dinov2_vitl14", "--dataset", "d"]

    code, output = run(str(real), str(wide), *base, "-m", "FD")
    assert code == 1 and "feature dimensions differ (real 4, generated 5)" in output
    code, output = run(str(real), str(bad), *base, "-m", "KD")
    assert code == 1 and "NaN" in output
    # feature files without metadata are labelled with the named encoder
    code, output = run(str(real), f"m1={real}", *base, "-m", "FD")
    assert code == 0, output
    tidy = read_metric_table(tmp_path / "o" / "metrics.csv")
    assert tidy.loc[0, "weights"] == "unknown"
    assert abs(tidy.loc[0, "value"]) < 1e-9


def test_vendi_per_class_from_a_labels_file(bench, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    rows = ["path,class_name"]
    rows += [
        f"{bench / 'good' / f'{i:03d}.png'},{'cat' if i < 12 else 'dog'}"
        for i in range(24)
    ]
    labels.write_text("\n".join(rows) + "\n")
    code, output = run(
        str(bench / "real"),
        str(bench / "good"),
        "-m",
        "vendi_per_class",
        "--labels",
        str(labels),
        "-o",
        str(tmp_path / "out"),
        *common(tmp_path),
        "--save-features",
    )
    assert code == 0, output
    tidy = read_metric_table(tmp_path / "out" / "metrics.csv")
    good = load_feature_file(tmp_path / "out" / "features" / "good__pixels.npz")
    from analysis.metrics.metric_vendi import vendi_score

    expected = np.mean(
        [vendi_score(good.features[:12]), vendi_score(good.features[12:])]
    )
    assert tidy.loc[0, "value"] == pytest.approx(expected, rel=1e-12)
    assert tidy.loc[0, "n_real"] == 0


def fake_gpus(monkeypatch, count: int) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    ("device", "gpus", "message"),
    [
        (
            "cuda",
            0,
            "Error: --device cuda: no CUDA device is available here; use cpu, or "
            "leave the device out to choose automatically",
        ),
        (
            "cuda:3",
            2,
            "Error: --device cuda:3: this machine has 2 CUDA device(s), cuda:0 to "
            "cuda:1; use cpu, or leave the device out to choose automatically",
        ),
        ("tpu", 0, "Error: --device tpu: unknown device; allowed: cpu, cuda, cuda:N"),
        ("cpu:0", 0, "Error: --device cpu:0: unknown device; allowed: cpu, cuda"),
    ],
)
def test_device_is_checked_before_anything_else(
    bench, tmp_path, monkeypatch, device, gpus, message
) -> None:
    fake_gpus(monkeypatch, gpus)
    features = save_feature_file(
        tmp_path / "real.npz", FeatureSet(np.ones((20, 4)), [], {"shard": [0, 1]})
    )
    runs = [
        # folders: checked before a model is built (cuda used to be a traceback)
        [str(bench / "real"), str(bench / "good"), *common(tmp_path)],
        # feature files and merging build no model: the device used to be ignored
        [str(features), f"m={features}", "-e", "pixels", "--dataset", "d"],
        ["--merge-shards", str(features)],
    ]
    for args in runs:
        out = tmp_path / "out"
        code, output = run(*args, "-o", str(out), "--device", device)
        assert code == 2, output
        assert output.splitlines()[-1].startswith(message), output
        assert not out.exists()


def test_an_existing_device_is_accepted(tmp_path, monkeypatch) -> None:
    from analysis.metrics.devices import check_device

    fake_gpus(monkeypatch, 2)
    assert [check_device(d) for d in ("cpu", "cuda", "cuda:1")] == [
        "cpu",
        "cuda",
        "cuda:1",
    ]
    features = save_feature_file(
        tmp_path / "real.npz", FeatureSet(np.ones((20, 4)), [])
    )
    code, output = run(
        str(features), f"m={features}", "-e", "pixels", "--dataset", "d",
        "-m", "FD", "-o", str(tmp_path / "out"), "--device", "cuda:1",
    )  # fmt: skip
    assert code == 0, output
