"""Readers: per-trial exports and the published per-participant / per-image CSVs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.names import Aliases
from analysis.readers import (
    detect_format,
    participants_from_trials,
    read_images,
    read_participants,
    read_trials,
)
from study_server.export_schema import TRIAL_COLUMNS, names

PUBLISHED = "anchors/dgm_eval_human_realism"


def trial_rows(participant, model, truths, responses, rts, **extra):
    """Rows of a per-trial export for one participant's main trials."""
    rows = []
    for i, (truth, response, rt) in enumerate(zip(truths, responses, rts, strict=True)):
        rows.append(
            {
                "study": "pilot",
                "dataset": "cifar10",
                "session": f"s-{participant}",
                "participant": participant,
                "session_status": "completed",
                "model": model,
                "stimulus": f"{'r' if truth == 'real' else model}-{i}",
                "is_real": "true" if truth == "real" else "false",
                "kind": "main",
                "position": i,
                "response": response,
                "rt_ms": rt,
                "timing_invalid": "false",
                **extra,
            }
        )
    return rows


@pytest.fixture
def export_csv(tmp_path):
    # p1 (DDPM): generated g,g,r (1 error) ; real r,g (1 error)
    # p2 (DDPM): generated g,g,g (0 errors); real r,r (0 errors)
    # p3 (GAN): generated r,r,r (3 errors); real g,r (1 error)
    truths = ["generated"] * 3 + ["real"] * 2
    rows = (
        trial_rows(
            "p1",
            "DDPM",
            truths,
            ["generated", "generated", "real", "real", "generated"],
            [500, 700, 900, 1100, 300],
        )
        + trial_rows("p2", "DDPM", truths, ["generated"] * 3 + ["real"] * 2, [400] * 5)
        + trial_rows(
            "p3",
            "GAN",
            truths,
            ["real"] * 3 + ["generated", "real"],
            [1000, 1000, 2000, 3000, 3000],
        )
    )
    # A practice and a check trial that must not count.
    rows.append({**rows[0], "kind": "practice", "response": "real"})
    rows.append({**rows[0], "kind": "check", "response": "real"})
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[c for c in names(TRIAL_COLUMNS) if c in frame])
    path = tmp_path / "trials.csv"
    frame.to_csv(path, index=False)
    return path


def test_participants_from_export_by_hand(export_csv):
    table = read_participants(export_csv)
    assert list(table["participant"]) == ["p1", "p2", "p3"]
    p1, p2, p3 = (table.iloc[i] for i in range(3))
    assert p1["n_trials"] == 5 and p1["n_correct"] == 3
    assert p1["error_rate"] == pytest.approx(2 / 5)
    assert p1["fake_error_rate"] == pytest.approx(1 / 3)
    assert p1["real_error_rate"] == pytest.approx(1 / 2)
    assert p1["answered_real_rate"] == pytest.approx(2 / 5)
    assert p1["rt_total_s"] == pytest.approx(3.5)
    assert p1["fake_rt_total_s"] == pytest.approx(2.1)
    assert p1["real_rt_total_s"] == pytest.approx(1.4)
    assert p1["rt_median_ms"] == pytest.approx(700)
    assert p2["error_rate"] == 0 and p2["answered_real_rate"] == pytest.approx(0.4)
    assert p3["error_rate"] == pytest.approx(4 / 5)
    assert p3["fake_error_rate"] == 1 and p3["real_error_rate"] == pytest.approx(0.5)
    assert (table["n_fake_trials"] == 3).all() and (table["n_real_trials"] == 2).all()


def test_detect_format(export_csv, shared_data):
    assert detect_format(export_csv) == "trials"
    published = shared_data / PUBLISHED
    assert detect_format(published / "per_participant/lsun256.csv") == "participants"
    assert detect_format(published / "per_image/lsun_labeled_data.csv") == "images"


def test_participant_table_round_trip(export_csv, tmp_path):
    table = read_participants(export_csv)
    path = tmp_path / "participants.csv"
    table.to_csv(path, index=False)
    assert detect_format(path) == "participant_table"
    again = read_participants(path)
    pd.testing.assert_frame_equal(again, table, check_dtype=False)


def test_published_participants_ids_keep_dataset(shared_data):
    folder = shared_data / PUBLISHED / "per_participant"
    files = sorted(folder.glob("*.csv"))
    table = read_participants(files)
    assert len(table) == 1036
    assert set(table["dataset"]) == {"cifar10", "ffhq256", "imagenet256", "lsun256"}
    # participant_0 exists in every file; identity is (dataset, participant).
    assert (table["participant"] == "participant_0").sum() == 4
    raw = pd.read_csv(folder / "cifar10.csv")
    mine = table[table["dataset"] == "cifar10"].set_index("participant")
    raw = raw.set_index("id").loc[mine.index]
    np.testing.assert_array_equal(mine["error_rate"], raw["err_rt"])
    np.testing.assert_array_equal(mine["n_correct"], raw["num_correct"].astype(int))
    np.testing.assert_array_equal(mine["rt_total_s"], raw["resp_time"])
    # First row of cifar10.csv, written out by hand from the file.
    first = mine.loc["participant_0"]
    assert first["model"] == "ACGAN"
    assert first["n_correct"] == 171 and first["error_rate"] == pytest.approx(0.145)
    assert first["fake_error_rate"] == pytest.approx(0.09)
    assert first["real_error_rate"] == pytest.approx(0.20)
    assert first["answered_real_rate"] == pytest.approx(0.445)
    assert (table["n_trials"] == 200).all() and (table["n_fake_trials"] == 100).all()


def test_same_file_twice_is_an_error(shared_data):
    path = shared_data / PUBLISHED / "per_participant/lsun256.csv"
    with pytest.raises(ValueError, match="unique within a dataset"):
        read_participants([path, path])


def test_dataset_argument_and_stem(shared_data):
    path = shared_data / PUBLISHED / "per_participant/lsun256.csv"
    table = read_participants(path, dataset="LSUN-Bedroom")
    assert set(table["dataset"]) == {"LSUN-Bedroom"}


def test_missing_dataset_is_an_error(export_csv, tmp_path):
    frame = pd.read_csv(export_csv).drop(columns="dataset")
    path = tmp_path / "nodataset.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="--dataset"):
        read_trials(path)
    assert set(read_trials(path, dataset="cifar10")["dataset"]) == {"cifar10"}


def test_non_binary_response_is_named(export_csv, tmp_path):
    frame = pd.read_csv(export_csv)
    frame.loc[2, "response"] = "maybe"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"'maybe'.*allowed: real, generated"):
        read_trials(path)


def test_missing_column_is_named(export_csv, tmp_path):
    frame = pd.read_csv(export_csv).drop(columns="stimulus")
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="column"):
        read_participants(path)
    with pytest.raises(ValueError, match="stimulus"):
        read_trials(path)


def test_correct_column_must_agree(export_csv, tmp_path):
    frame = pd.read_csv(export_csv)
    frame["correct"] = True
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="'correct' disagrees"):
        read_trials(path)


def test_within_design_real_trials_count_for_each_model(export_csv):
    trials = read_trials(export_csv)
    # p1 judged DDPM and GAN images; its real trials carry no model.
    trials.loc[trials["participant"] != "p1", "participant"] = "p9"
    p1 = trials["participant"] == "p1"
    trials.loc[p1 & trials["is_real"], "model"] = pd.NA
    extra = trials[p1 & ~trials["is_real"]].copy()
    extra["model"] = "GAN"
    extra["response"] = "real"
    extra["correct"] = False
    trials = pd.concat([trials, extra], ignore_index=True)
    with pytest.warns(UserWarning, match="within design"):
        table = participants_from_trials(trials)
    rows = table[table["participant"] == "p1"].set_index("model")
    assert rows.loc["DDPM", "real_error_rate"] == pytest.approx(0.5)
    assert rows.loc["GAN", "real_error_rate"] == pytest.approx(0.5)
    assert rows.loc["GAN", "fake_error_rate"] == 1
    assert rows.loc["GAN", "n_trials"] == 5


def test_aliases_unify_names(shared_data, tmp_path):
    alias_file = tmp_path / "aliases.csv"
    alias_file.write_text("kind,dataset,name,alias\nmodel,lsun256,ct2,Consistency\n")
    path = shared_data / PUBLISHED / "per_participant/lsun256.csv"
    renamed = pd.read_csv(path)
    renamed["model"] = renamed["model"].replace({"ct2": "Consistency"})
    # Case and punctuation differences need no alias.
    renamed["model"] = renamed["model"].replace({"ddpm": "DDPM"})
    other = tmp_path / "lsun256.csv"
    renamed.assign(id=renamed["id"] + "_b").to_csv(other, index=False)
    with pytest.warns(UserWarning, match="respelled"):
        table = read_participants([path, other], aliases=Aliases.from_file(alias_file))
    counts = table.groupby("model").size()
    assert counts["ct2"] == 50 and counts["ddpm"] == 50
    assert "Consistency" not in counts and "DDPM" not in counts


def test_published_images_by_hand(shared_data):
    path = shared_data / PUBLISHED / "per_image/cifar10_labeled_data.csv"
    table = read_images(path)
    assert set(table["dataset"]) == {"cifar10"}
    raw = pd.read_csv(path)
    assert len(table) == len(raw)
    # Row 1 of the file: ACGAN, real image 6/0426.png, 2 guesses, 1 "generated".
    row = table[(table["model"] == "ACGAN") & (table["image"] == "6/0426.png")]
    row = row[row["is_real"]].iloc[0]
    assert row["n_judgements"] == 2 and row["n_judged_generated"] == 1
    assert row["n_errors"] == 1 and row["error_rate"] == pytest.approx(0.5)
    np.testing.assert_allclose(
        np.sort(table["soft_label"]), np.sort(raw["soft_label"]), atol=1e-12
    )


def test_images_file_is_not_participants(shared_data):
    path = shared_data / PUBLISHED / "per_image/lsun_labeled_data.csv"
    with pytest.raises(ValueError, match="read_images"):
        read_participants(path)


def test_file_format_skips_detection(export_csv, tmp_path):
    frame = pd.read_csv(export_csv).drop(columns="kind")
    path = tmp_path / "nokind.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_participants(path)
    with pytest.raises(ValueError, match=r"lacks the column.*kind"):
        read_participants(path, file_format="trials")
    with pytest.raises(ValueError, match="file_format must be one of"):
        read_participants(path, file_format="images")


# Three participants in the published per-participant layout (100 generated
# and 100 real trials each), written as text so that any cell can be spoiled.
PUBLISHED_PARTICIPANTS = (
    "id,model,num_correct,err_rt,f_err_rt,r_err_rt,r_ans_rt,resp_time,"
    "f_resp_time,r_resp_time\n"
    "participant_0,ACGAN,171.0,0.145,0.09,0.2,0.445,158.68,81.6,77.08\n"
    "participant_1,ACGAN,182.0,0.09,0.06,0.12,0.47,260.57,135.27,125.3\n"
    "participant_2,NVAE,150.0,0.25,0.3,0.2,0.55,200.0,100.0,100.0\n"
)

# Three images in the published per-image layout.
PUBLISHED_IMAGES = (
    ",model,generated,image_path,number_guesses,number_guesses_generated,"
    "soft_label\n"
    "0,ACGAN,0,9/2128.png,1,0,0.0\n"
    "1,ACGAN,1,6/0426.png,2,1,0.5\n"
    "2,ACGAN,1,6/0427.png,3,3,1.0\n"
)


def _spoil(text: str, row: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_published_participants_layout_reads(tmp_path):
    path = tmp_path / "cifar10.csv"
    path.write_text(PUBLISHED_PARTICIPANTS)
    table = read_participants(path)
    assert list(table["error_rate"]) == [0.145, 0.09, 0.25]
    assert list(table["n_correct"]) == [171, 182, 150]
    images = tmp_path / "cifar10_labeled_data.csv"
    images.write_text(PUBLISHED_IMAGES)
    errors = read_images(images).set_index("image")["n_errors"]
    assert errors.to_dict() == {"9/2128.png": 0, "6/0426.png": 1, "6/0427.png": 0}


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (2, "err_rt", "abc", "column 'err_rt' must be numeric; found 'abc' in row 2"),
        (1, "num_correct", "many", "column 'num_correct' must be numeric; found "),
        (3, "r_ans_rt", "1.5", "column 'r_ans_rt' must be a rate in [0, 1]; found "),
        (3, "f_err_rt", "inf", "column 'f_err_rt' must be a rate in [0, 1]; found "),
        (2, "r_err_rt", "", "column 'r_err_rt' must be filled in; it is empty in "),
        (1, "resp_time", "slow", "column 'resp_time' must be numeric; found 'slow'"),
    ],
)
def test_bad_published_participant_cell_is_named(tmp_path, row, column, value, message):
    path = tmp_path / "cifar10.csv"
    path.write_text(_spoil(PUBLISHED_PARTICIPANTS, row, column, value))
    with pytest.raises(ValueError) as caught:
        read_participants(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}")
    assert text.endswith(f" row {row} (line {row + 1} of the file)")


def test_published_participant_error_message_in_full(tmp_path):
    path = tmp_path / "cifar10.csv"
    path.write_text(_spoil(PUBLISHED_PARTICIPANTS, 2, "err_rt", "abc"))
    with pytest.raises(ValueError) as caught:
        read_participants(path)
    assert str(caught.value) == (
        f"{path}: column 'err_rt' must be numeric; found 'abc' in row 2 "
        "(line 3 of the file)"
    )


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (
            2,
            "generated",
            "yes",
            "column 'generated' must be numeric; found 'yes' in row 2 (line 3 of "
            "the file)",
        ),
        (
            3,
            "generated",
            "2",
            "column 'generated' must be 0 or 1; found 2 in row 3 (line 4 of the file)",
        ),
        (
            1,
            "number_guesses",
            "two",
            "column 'number_guesses' must be numeric; found 'two' in row 1 (line 2 "
            "of the file)",
        ),
        (
            2,
            "number_guesses",
            "1.5",
            "column 'number_guesses' must be a whole number, at least 1; found 1.5 "
            "in row 2 (line 3 of the file)",
        ),
        (
            1,
            "number_guesses_generated",
            "4",
            "column 'number_guesses_generated' must be at most number_guesses; "
            "found 4 in row 1 (line 2 of the file)",
        ),
        (
            3,
            "number_guesses",
            "",
            "column 'number_guesses' must be filled in; it is empty in row 3 (line "
            "4 of the file)",
        ),
    ],
)
def test_bad_published_image_cell_is_named(tmp_path, row, column, value, message):
    path = tmp_path / "cifar10_labeled_data.csv"
    path.write_text(_spoil(PUBLISHED_IMAGES, row, column, value))
    with pytest.raises(ValueError) as caught:
        read_images(path)
    assert str(caught.value) == f"{path}: {message}"


def test_bad_trial_number_names_its_row(export_csv, tmp_path):
    frame = pd.read_csv(export_csv)
    frame["rt_ms"] = frame["rt_ms"].astype(object)
    frame.loc[3, "rt_ms"] = "fast"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError) as caught:
        read_trials(path)
    assert str(caught.value) == (
        f"{path}: column 'rt_ms' must be numeric; found 'fast' in row 4 (line 5 "
        "of the file)"
    )


def test_fractional_whole_number_field_is_named(export_csv, tmp_path):
    frame = pd.read_csv(export_csv)
    frame["position"] = frame["position"].astype(float)
    frame.loc[2, "position"] = 1.5
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError) as caught:
        read_trials(path)
    assert str(caught.value) == (
        f"{path}: column 'position' must be a whole number; found '1.5' in row 3 "
        "(line 4 of the file)"
    )
