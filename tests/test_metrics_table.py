"""The tidy metric table: schema checks, wide form and a CSV round trip."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.metrics.table import (
    METRIC_NAMES,
    RANDOM_INIT,
    TABLE_COLUMNS,
    MetricRow,
    read_metric_table,
    rows_to_frame,
    to_wide,
    validate_metric_table,
    write_metric_table,
)


def _rows() -> list[MetricRow]:
    return [
        MetricRow("cifar10", "ddpm", "pixels", "FD", 12.5, 300, 64, "none"),
        MetricRow("cifar10", "ddpm", "pixels", "KD", 0.1 + 0.2, 300, 64, "none"),
        MetricRow("cifar10", "edm", "pixels", "FD", 3.0, 300, 64, "none"),
        MetricRow("cifar10", "edm", "pixels", "vendi", 7.25, 0, 64, "none"),
        MetricRow("cifar10", "edm", "dinov2_vits14", "FD", 1.0, 300, 64, RANDOM_INIT),
    ]


def test_columns_are_the_contract() -> None:
    assert TABLE_COLUMNS == (
        "dataset",
        "model",
        "encoder",
        "metric",
        "value",
        "n_real",
        "n_generated",
        "weights",
    )
    for name in ("FD", "FD_inf", "KD", "precision", "recall", "density"):
        assert name in METRIC_NAMES
    for name in ("coverage", "AuthPct", "C_T", "FLS", "IS", "vendi"):
        assert name in METRIC_NAMES


def test_round_trip_is_exact(tmp_path) -> None:
    tidy = rows_to_frame(_rows())
    tidy_path, wide_path = write_metric_table(tidy, tmp_path / "out")
    back = read_metric_table(tidy_path)
    pd.testing.assert_frame_equal(back, tidy)
    assert back.loc[1, "value"] == 0.1 + 0.2  # no rounding in the CSV

    wide = pd.read_csv(wide_path)
    assert list(wide.columns) == [
        "dataset",
        "model",
        "encoder",
        "weights",
        "n_real",
        "n_generated",
        "FD",
        "KD",
        "vendi",
    ]
    assert len(wide) == 3


def test_wide_form_values_and_counts() -> None:
    wide = to_wide(rows_to_frame(_rows()))
    edm = wide[(wide.model == "edm") & (wide.encoder == "pixels")].iloc[0]
    assert edm["FD"] == 3.0
    assert edm["vendi"] == 7.25
    assert math.isnan(edm["KD"])
    assert edm["n_real"] == 300  # largest count over the row's metrics
    rand = wide[wide.encoder == "dinov2_vits14"].iloc[0]
    assert rand["weights"] == RANDOM_INIT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "FID"}, "unknown metric"),
        ({"value": float("nan")}, "finite"),
        ({"n_real": -1}, "non-negative"),
        ({"model": "real"}, "not a model"),
        ({"encoder": " "}, "empty names"),
    ],
)
def test_bad_rows_are_refused(change: dict, message: str) -> None:
    row = {**_rows()[0].__dict__, **change}
    with pytest.raises(ValueError, match=message):
        rows_to_frame([row])


def test_unknown_metric_error_lists_known_names() -> None:
    row = {**_rows()[0].__dict__, "metric": "FID"}
    with pytest.raises(ValueError, match="known: FD, FD_inf, KD"):
        rows_to_frame([row])


def test_duplicates_and_wrong_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        rows_to_frame([_rows()[0], _rows()[0]])
    frame = rows_to_frame(_rows()).rename(columns={"value": "score"})
    with pytest.raises(ValueError, match="exactly the columns"):
        validate_metric_table(frame)


def test_disagreeing_weights_are_refused() -> None:
    rows = _rows()[:2]
    rows[1] = MetricRow("cifar10", "ddpm", "pixels", "KD", 1.0, 300, 64, "other")
    with pytest.raises(ValueError, match="disagree"):
        to_wide(rows_to_frame(rows))
