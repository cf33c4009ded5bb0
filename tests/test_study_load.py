"""`flask study load` and `study list`: create, update, refuse, write nothing."""

from __future__ import annotations

import sqlalchemy as sa

from study_server.db import db
from study_server.models import Event, Participant, Session, Stimulus, Study
from tests.conftest import _write_images, study_toml

TRIALS = {
    "per_session": 10,
    "real_fraction": 0.5,
    "practice": 2,
    "checks": 1,
    "max_failed_checks": 1,
    "break_every": 5,
}


def make_folder(tmp_path, *, n_real=8, models=("m1", "m2"), n_model=6, **sections):
    folder = tmp_path / "study"
    _write_images(folder / "images/real", n_real, 1)
    for i, model in enumerate(models):
        _write_images(folder / "images/generated" / model, n_model, 10 + i)
    _write_images(folder / "images/practice/real", 1, 2)
    _write_images(folder / "images/practice/generated", 1, 3)
    _write_images(folder / "images/checks/generated", 2, 4)
    sections.setdefault("trials", TRIALS)
    sections.setdefault("display", {"size": 32})
    (folder / "study.toml").write_text(study_toml("pilot", **sections))
    return folder


def counts(app):
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(
                sa.select(sa.func.count()).select_from(model)
            )
            for model in (Study, Stimulus, Event, Session)
        }


def stored_files(app):
    from pathlib import Path

    root = Path(app.config["STIMULUS_STORE"])
    return sorted(p.name for p in root.rglob("*.png")) if root.exists() else []


def add_session(app, slug="pilot"):
    with app.app_context():
        study = db.session.scalar(sa.select(Study).where(Study.slug == slug))
        participant = Participant(platform="direct", external_id="p-1")
        db.session.add(participant)
        db.session.flush()
        db.session.add(Session(study_id=study.id, participant_id=participant.id))
        db.session.commit()


def test_load_creates_study_and_stimuli(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "Study 'pilot' created (status open)." in result.output
    assert "added     8 main image(s) from real" in result.output
    assert "added     6 main image(s) from m1" in result.output

    with app.app_context():
        study = db.session.scalar(sa.select(Study).where(Study.slug == "pilot"))
        assert (study.dataset, study.design, study.status) == (
            "testset",
            "between",
            "open",
        )
        assert study.settings["trials"]["per_session"] == 10
        rows = db.session.execute(
            sa.select(Stimulus.role, Stimulus.source, Stimulus.is_real, sa.func.count())
            .group_by(Stimulus.role, Stimulus.source, Stimulus.is_real)
            .order_by(Stimulus.role, Stimulus.source)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("check", "generated", False, 2),
        ("main", "m1", False, 6),
        ("main", "m2", False, 6),
        ("main", "real", True, 8),
        ("practice", "generated", False, 1),
        ("practice", "real", True, 1),
    ]
    # Stored files are named by digest only: nothing says where they came from.
    files = stored_files(app)
    assert len(files) == 24
    assert all(len(name) == len("x" * 64 + ".png") for name in files)


def test_reload_is_idempotent(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    runner.invoke(args=["study", "load", str(folder / "study.toml"), "--quiet"])
    before = counts(app)
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "Study 'pilot' updated" in result.output
    assert "kept     24 image(s) already in the study" in result.output
    after = counts(app)
    assert after["stimulus"] == before["stimulus"] == 24
    assert after["event"] == before["event"] + 1


def test_invalid_file_writes_nothing(app, runner, tmp_path):
    folder = make_folder(tmp_path, trials={**TRIALS, "per_session": -1})
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert "trials.per_session: got -1" in result.output
    assert counts(app) == {"study": 0, "stimulus": 0, "event": 0, "session": 0}
    assert stored_files(app) == []


def test_too_few_images_names_the_model_and_writes_nothing(app, runner, tmp_path):
    folder = make_folder(tmp_path, n_model=3)
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert "images.generated: model 'm1' has 3 usable image(s); a session needs 5" in (
        result.output
    )
    assert counts(app)["stimulus"] == 0
    assert stored_files(app) == []


def test_too_few_real_images(app, runner, tmp_path):
    folder = make_folder(tmp_path, n_real=4)
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert "images.real: 4 usable image(s); a session needs 5" in result.output


def test_missing_folder_names_the_key(app, runner, tmp_path):
    folder = make_folder(tmp_path, images={"real": "images/nope"})
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert "images.real" in result.output and "nope" in result.output
    assert counts(app)["study"] == 0


def test_every_folder_problem_is_listed_at_once(app, runner, tmp_path):
    folder = make_folder(
        tmp_path,
        images={"real": "images/nothere", "practice": "images/nope"},
    )
    (folder / "images/generated/m2/empty").mkdir()  # a model folder without images
    for image in (folder / "images/generated/m2").glob("*.png"):
        image.unlink()
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )

    assert result.exit_code == 1
    images = (folder / "images").resolve()
    assert result.stderr == (
        f"Error: {folder / 'study.toml'}: 3 problem(s):\n"
        f"  - images.real: {images / 'nothere'}: folder not found "
        "(expected a folder of real images)\n"
        f"  - images.generated: {images / 'generated/m2'}: no image files "
        "(expected the images of model 'm2'; image files end in .png, .jpg, "
        ".jpeg, .jpe, .jfif, .webp)\n"
        f"  - images.practice: {images / 'nope'}: folder not found "
        "(expected subfolders real/ and generated/)\n"
    )
    assert counts(app) == {"study": 0, "stimulus": 0, "event": 0, "session": 0}
    assert stored_files(app) == []


def test_within_design_needs_a_share_per_model(app, runner, tmp_path):
    folder = make_folder(tmp_path, n_model=3, top={"design": "within"})
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    # 5 generated trials over 2 models: ceil(5 / 2) = 3 images per model suffice.
    assert result.exit_code == 0, result.output


def test_texts_may_change_after_sessions_started(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    runner.invoke(args=["study", "load", str(folder / "study.toml"), "--quiet"])
    add_session(app)
    (folder / "study.toml").write_text(
        study_toml(
            "pilot",
            trials=TRIALS,
            display={"size": 32},
            texts={"debrief": "Thank you ü"},
        )
    )
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        study = db.session.scalar(sa.select(Study))
        assert study.settings["texts"]["debrief"] == "Thank you ü"


def test_design_is_frozen_once_sessions_started(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    runner.invoke(args=["study", "load", str(folder / "study.toml"), "--quiet"])
    add_session(app)
    before = counts(app)
    (folder / "study.toml").write_text(
        study_toml("pilot", trials={**TRIALS, "per_session": 8}, display={"size": 32})
    )
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert (
        "trials: cannot change after sessions have started (1 so far)" in result.output
    )
    assert counts(app) == before


def test_images_cannot_be_removed_once_sessions_started(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    runner.invoke(args=["study", "load", str(folder / "study.toml"), "--quiet"])
    add_session(app)
    (folder / "images/real/img_0000.png").unlink()
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 1
    assert "1 image(s) of the study are missing from the folders" in result.output


def test_bad_files_are_skipped_and_listed(app, runner, tmp_path):
    folder = make_folder(tmp_path)
    (folder / "images/real/broken.png").write_bytes(b"")
    (folder / "images/real/notes.png").write_text("not an image")
    result = runner.invoke(
        args=["study", "load", str(folder / "study.toml"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "broken.png: empty file" in result.output
    assert "notes.png: not an image" in result.output
    assert counts(app)["stimulus"] == 24


def test_study_list(app, runner, tmp_path):
    assert "No studies yet" in runner.invoke(args=["study", "list"]).output
    folder = make_folder(tmp_path)
    runner.invoke(args=["study", "load", str(folder / "study.toml"), "--quiet"])
    add_session(app)
    lines = runner.invoke(args=["study", "list"]).output.splitlines()
    assert lines[0].split() == [
        "slug",
        "status",
        "design",
        "dataset",
        "images",
        "sessions",
    ]
    assert lines[1].split() == [
        "pilot",
        "open",
        "between",
        "testset",
        "24",
        "active",
        "1",
    ]


def test_missing_study_file(runner, tmp_path):
    result = runner.invoke(args=["study", "load", str(tmp_path / "none.toml")])
    assert result.exit_code == 1
    assert "cannot read the file" in result.output
