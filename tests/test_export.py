"""Exports: CSV and Parquet that round-trip through pandas, Psych-DS layout,
pseudonyms, streamed downloads, and the ``flask export`` / ``analysis export``
commands (one implementation)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from researcher_helpers import (
    T0,
    login,
    make_event,
    make_researcher,
    make_session,
    make_study_row,
    make_trials,
)
from sqlalchemy import select

from analysis.cli import main as analysis_main
from study_server.db import db
from study_server.export_schema import (
    EVENT_COLUMNS,
    SESSION_COLUMNS,
    TRIAL_COLUMNS,
    dtypes,
    names,
)
from study_server.models import Trial
from study_server.services import exports
from study_server.services.pseudonyms import PSEUDONYM_LENGTH, Pseudonymizer

KEY = b"test-secret-key"  # conftest's SECRET_KEY
PID_DONE = "5f8c2a1b9d3e4f6a7b8c9d01"
PID_RETURNED = "5f8c2a1b9d3e4f6a7b8c9d02"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131 — Ünïcödé 浏览器"
ANSWERS = {
    "consent": "Oui, j'accepte ✓",
    "comments": 'Très "bien", merci,\nà bientôt — 日本語',
}
TABLE_COLUMNS = {"trials": TRIAL_COLUMNS, "sessions": SESSION_COLUMNS}
TABLE_COLUMNS["events"] = EVENT_COLUMNS

CSV_FILES = {
    table: f"data/study-pilot_description-{table}_data.csv" for table in TABLE_COLUMNS
}


def answered(response: str, is_real: bool, rt: float, **fields) -> dict:
    base = {
        "response": response,
        "is_real": is_real,
        "rt_ms": rt,
        "exposure_ms": 500.4,
        "intended_frames": 30,
        "achieved_frames": 30,
        "frame_interval_ms": 16.68,
        "onset_ms": 123456.7,
        "offset_ms": 123957.1,
        "visibility_lost": False,
        "focus_lost": False,
        "timing_invalid": False,
    }
    return {**base, **fields}


@pytest.fixture
def study(app):
    """A between-design study with sessions in every kind of ending."""
    study = make_study_row(app, title="Pilot — réel ou généré ?")
    done = make_session(
        app,
        study,
        status="completed",
        model="m1",
        external_id=PID_DONE,
        started_at=T0,
        last_seen_at=T0 + timedelta(minutes=11),
        completed_at=T0 + timedelta(minutes=11, microseconds=250),
        user_agent=USER_AGENT,
        answers=ANSWERS,
        screen_width=1280,
        screen_height=800,
        frame_interval_ms=16.68,
        n_trials=5,
        n_answered=5,
    )
    make_trials(
        app,
        done,
        [
            answered("real", True, 812.4),
            answered("real", False, 399.95, achieved_frames=31, timing_invalid=True),
            answered("generated", True, 1500.0, visibility_lost=True),
            answered("generated", False, 0.5, focus_lost=True),
        ],
    )
    make_trials(
        app, done, [answered("real", True, 700.0)], kind="check", first_position=4
    )
    returned = make_session(
        app,
        study,
        status="returned",
        model="m2",
        external_id=PID_RETURNED,
        started_at=T0 + timedelta(minutes=1),
        n_trials=4,
        n_answered=2,
    )
    make_trials(
        app,
        returned,
        [answered("real", True, 900.0), answered("real", False, 650.25), None, None],
    )
    for status, reason in (
        ("abandoned", None),
        ("screened_out", "failed_checks"),
        ("excluded", "too_fast"),
    ):
        make_session(app, study, status=status, exclusion_reason=reason, started_at=T0)
    make_event(
        app,
        study,
        "session_start",
        session=done,
        data={"params": {"PROLIFIC_PID": PID_DONE}, "url": f"/s/pilot?p={PID_DONE}"},
    )
    make_event(app, study, "status_change", actor="researcher:alice", data={"to": "x"})
    return study


def read_csv(path: Path, columns) -> pd.DataFrame:
    return pd.read_csv(
        path,
        dtype=dtypes(columns),
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8",
    )


def export_with_flask(runner, out: Path, *args: str):
    result = runner.invoke(
        args=["export", "pilot", "--out", str(out), "--quiet", *args]
    )
    assert result.exit_code == 0, result.output
    return result


def expected_pseudonym(external_id: str, key: bytes = KEY) -> str:
    message = f"prolific:{external_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]


def test_trial_csv_round_trips_with_schema_dtypes(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out")
    trials = read_csv(tmp_path / "out" / CSV_FILES["trials"], TRIAL_COLUMNS)

    assert list(trials.columns) == names(TRIAL_COLUMNS)
    assert {c: str(t) for c, t in trials.dtypes.items()} == dtypes(TRIAL_COLUMNS)
    assert len(trials) == 9  # 5 of the completed session, 4 of the returned one

    done = trials[trials["participant"] == expected_pseudonym(PID_DONE)]
    assert done["rt_ms"].tolist() == [812.4, 399.95, 1500.0, 0.5, 700.0]
    assert done["correct"].tolist() == [True, False, False, True, True]
    assert done["timing_invalid"].tolist() == [False, True, False, False, False]
    assert done["achieved_frames"].tolist() == [30, 31, 30, 30, 30]
    assert done["kind"].tolist() == ["main"] * 4 + ["check"]
    assert set(done["model"]) == {"m1"}
    assert done["source"].tolist() == ["real", "m1", "real", "m1", "real"]
    assert done["stimulus"].str.fullmatch(r"[0-9a-f]{16}").all()

    with db_app_context(runner) as session:
        stored = session.scalars(select(Trial).order_by(Trial.session_id, Trial.id))
        stored_served = [t.served_at for t in stored]
    parsed = pd.to_datetime(trials["served_at"], format="ISO8601", utc=True)
    assert [ts.to_pydatetime() for ts in parsed] == stored_served
    assert trials["served_at"].str.endswith("+00:00").all()
    answered_rows = trials["responded_at"].notna()
    assert trials.loc[answered_rows, "responded_at"].str.endswith("+00:00").all()


class db_app_context:
    """``with db_app_context(runner) as session``: the app's database session."""

    def __init__(self, runner):
        self.context = runner.app.app_context()

    def __enter__(self):
        self.context.push()
        return db.session

    def __exit__(self, *exc):
        self.context.pop()


def test_non_ascii_text_survives(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out")
    sessions = read_csv(tmp_path / "out" / CSV_FILES["sessions"], SESSION_COLUMNS)
    assert list(sessions.columns) == names(SESSION_COLUMNS)
    assert {c: str(t) for c, t in sessions.dtypes.items()} == dtypes(SESSION_COLUMNS)
    done = sessions[sessions["status"] == "completed"].iloc[0]
    assert done["user_agent"] == USER_AGENT
    assert json.loads(done["answers"]) == ANSWERS
    assert done["completed_at"] == "2026-12-03T09:11:00.000250+00:00"
    assert (done["screen_width"], done["screen_height"]) == (1280, 800)
    description = json.loads((tmp_path / "out/dataset_description.json").read_text())
    assert description["name"] == "Pilot — réel ou généré ?"


def test_aborted_and_completed_sessions_share_one_schema(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out")
    trials = read_csv(tmp_path / "out" / CSV_FILES["trials"], TRIAL_COLUMNS)
    returned = trials[trials["session_status"] == "returned"]
    assert len(returned) == 4
    unanswered = returned.iloc[2:]
    for column in ("response", "correct", "rt_ms", "responded_at", "timing_invalid"):
        assert unanswered[column].isna().all(), column
    assert returned["is_real"].notna().all()

    sessions = read_csv(tmp_path / "out" / CSV_FILES["sessions"], SESSION_COLUMNS)
    assert sorted(sessions["status"]) == sorted(
        ["completed", "returned", "abandoned", "screened_out", "excluded"]
    )
    reasons = dict(zip(sessions["status"], sessions["exclusion_reason"], strict=True))
    assert reasons["excluded"] == "too_fast"
    assert pd.isna(reasons["completed"])
    assert sessions.loc[sessions["status"] != "completed", "completed_at"].isna().all()

    # A study whose only session was aborted writes the very same header.
    lonely = make_study_row(runner.app, "lonely")
    make_trials(runner.app, make_session(runner.app, lonely, status="returned"), [None])
    out = tmp_path / "lonely"
    result = runner.invoke(args=["export", "lonely", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    files = {p.name: p for p in (out / "data").iterdir()}
    header = (
        files["study-lonely_description-trials_data.csv"].read_text().split("\n")[0]
    )
    assert header.split(",") == names(TRIAL_COLUMNS)


def test_events_table(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out")
    events = read_csv(tmp_path / "out" / CSV_FILES["events"], EVENT_COLUMNS)
    assert list(events.columns) == names(EVENT_COLUMNS)
    assert events["kind"].tolist() == ["session_start", "status_change"]
    assert pd.isna(events["session"].iloc[1])
    assert events["actor"].tolist() == ["participant", "researcher:alice"]
    data = json.loads(events["data"].iloc[0])
    pseudonym = expected_pseudonym(PID_DONE)
    assert data == {
        "params": {"PROLIFIC_PID": pseudonym},
        "url": f"/s/pilot?p={pseudonym}",
    }


def test_platform_ids_are_pseudonymised_everywhere_by_default(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out", "--format", "both")
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == 7
    for path in files:
        content = path.read_bytes()
        assert PID_DONE.encode() not in content, path
        assert PID_RETURNED.encode() not in content, path
    sessions = read_csv(tmp_path / "out" / CSV_FILES["sessions"], SESSION_COLUMNS)
    expected = {expected_pseudonym(PID_DONE), expected_pseudonym(PID_RETURNED)}
    assert expected <= set(sessions["participant"])
    assert sessions["participant"].str.len().eq(16).all()


def test_platform_ids_only_when_asked(runner, study, tmp_path):
    result = export_with_flask(runner, tmp_path / "out", "--include-platform-ids")
    assert "platform ids included" in result.output
    trials = read_csv(tmp_path / "out" / CSV_FILES["trials"], TRIAL_COLUMNS)
    assert set(trials["participant"]) == {PID_DONE, PID_RETURNED}
    description = json.loads((tmp_path / "out/dataset_description.json").read_text())
    assert "platform ids as given by the platform" in description["description"]


@pytest.fixture
def keyed_app_config(app_config):
    app_config["PSEUDONYM_KEY"] = "a separate pseudonym key"
    return app_config


def test_pseudonym_key_wins_over_secret_key(keyed_app_config, runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out")
    trials = read_csv(tmp_path / "out" / CSV_FILES["trials"], TRIAL_COLUMNS)
    expected = expected_pseudonym(PID_DONE, b"a separate pseudonym key")
    assert expected in set(trials["participant"])


KEYWORD_FILE = re.compile(r"^([a-z]+-[a-zA-Z0-9]+_)+data\.csv$")


def test_psych_ds_layout_and_description(runner, study, tmp_path):
    export_with_flask(runner, tmp_path / "out", "--author", "Ada Lovelace")
    out = tmp_path / "out"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["@context"] == "https://schema.org/"
    assert description["@type"] == "Dataset"
    assert description["schemaVersion"] == "Psych-DS 0.1.0"
    assert description["name"] and description["description"]
    assert description["creator"] == [{"@type": "Person", "name": "Ada Lovelace"}]

    headers = set()
    data_files = sorted((out / "data").glob("*.csv"))
    assert [p.name for p in data_files] == sorted(
        Path(f).name for f in CSV_FILES.values()
    )
    for path in data_files:
        assert KEYWORD_FILE.match(path.name), path.name
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        headers |= set(rows[0])
        assert {len(row) for row in rows} == {len(rows[0])}, path.name
    measured = description["variableMeasured"]
    assert {v["name"] for v in measured} == headers
    assert all(v["@type"] == "PropertyValue" and v["description"] for v in measured)
    units = {v["name"]: v.get("unitText") for v in measured}
    assert units["rt_ms"] == "milliseconds"
    assert units["achieved_frames"] == "frames"


def test_parquet_holds_the_same_table_with_schema_types(runner, study, tmp_path):
    pytest.importorskip("pyarrow")
    export_with_flask(runner, tmp_path / "out", "--format", "both")
    for table, columns in TABLE_COLUMNS.items():
        csv_frame = read_csv(tmp_path / "out" / CSV_FILES[table], columns)
        parquet = tmp_path / "out" / exports.file_name("pilot", table, "parquet")
        frame = pd.read_parquet(parquet, dtype_backend="numpy_nullable")
        assert {c: str(t) for c, t in frame.dtypes.items()} == dtypes(columns)
        pd.testing.assert_frame_equal(frame, csv_frame)


def test_parquet_written_in_several_row_groups(runner, study, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(exports, "PARQUET_BATCH_ROWS", 2)
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP_ROWS", 4)
    export_with_flask(runner, tmp_path / "out", "--format", "parquet")
    path = tmp_path / "out" / exports.file_name("pilot", "trials", "parquet")
    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # 4 + 4 + 1 trials
    frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
    assert frame["rt_ms"].tolist()[:5] == [812.4, 399.95, 1500.0, 0.5, 700.0]
    assert len(frame) == 9
    assert not (tmp_path / "out" / CSV_FILES["trials"]).exists()


def test_timestamps_are_formatted_alike_in_sql_and_python(app, study):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    # Databases other than SQLite and PostgreSQL get Python's formatting.
    other = SimpleNamespace(dialect=SimpleNamespace(name="mysql"))
    columns, finish = exports._timestamps(other, Trial.__table__.c.served_at)
    assert columns == [Trial.__table__.c.served_at]
    moment = datetime(2026, 12, 3, 9, 0, 0, 250, tzinfo=UTC)
    assert finish(moment) == "2026-12-03T09:00:00.000250+00:00"
    assert finish(None) is None

    # The database's own rendering gives the same text.
    with app.app_context():
        trial = db.session.scalar(select(Trial).order_by(Trial.id).limit(1))
        trial.served_at = moment
        db.session.commit()
        with exports.read_connection(db.engine) as connection:
            columns, finish = exports._timestamps(
                connection, Trial.__table__.c.served_at
            )
            query = select(*columns).where(Trial.__table__.c.id == trial.id)
            rendered = finish(connection.execute(query).scalar_one())
    assert rendered == "2026-12-03T09:00:00.000250+00:00"


def test_sqlite_times_stored_without_microseconds(app, study):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite's text storage of timestamps")
    with app.app_context():
        db.session.execute(
            db.text("UPDATE trial SET served_at = '2026-12-03 09:00:00'")
        )
        db.session.commit()
        chunks = exports.stream_table_csv(
            db.engine, "pilot", "trials", Pseudonymizer(KEY)
        )
        text = b"".join(chunks).decode()
    assert text.count(",2026-12-03T09:00:00.000000+00:00,") == 9


def test_export_command_refuses_bad_input(runner, study, tmp_path, monkeypatch):
    result = runner.invoke(args=["export", "nope", "--out", str(tmp_path / "a")])
    assert result.exit_code == 1
    assert "no study 'nope' in the database; studies: pilot" in result.output

    result = runner.invoke(args=["export", "pilot", "--out", "x", "--format", "xml"])
    assert result.exit_code == 2
    assert "'csv', 'parquet', 'both'" in result.output

    export_with_flask(runner, tmp_path / "b")
    again = runner.invoke(args=["export", "pilot", "--out", str(tmp_path / "b")])
    assert again.exit_code == 1
    assert "already holds an export" in again.output
    export_with_flask(runner, tmp_path / "b", "--force")

    monkeypatch.setattr(exports, "pyarrow_available", lambda: False)
    result = runner.invoke(
        args=["export", "pilot", "--out", str(tmp_path / "c"), "--format", "parquet"]
    )
    assert result.exit_code == 2
    assert "Parquet needs pyarrow" in result.output


# --- downloads ----------------------------------------------------------------


@pytest.fixture
def researcher(app, client):
    make_researcher(app)
    login(client)
    return client


def test_table_download_streams_the_same_bytes_as_the_command(
    runner, study, researcher, tmp_path
):
    export_with_flask(runner, tmp_path / "out")
    for table in TABLE_COLUMNS:
        answer = researcher.get(f"/researcher/studies/pilot/export/{table}.csv")
        assert answer.status_code == 200
        assert answer.is_streamed
        assert answer.mimetype == "text/csv"
        assert answer.headers["Content-Disposition"] == (
            f'attachment; filename="pilot-{table}.csv"'
        )
        assert answer.data == (tmp_path / "out" / CSV_FILES[table]).read_bytes()
    assert (
        researcher.get("/researcher/studies/pilot/export/users.csv").status_code == 422
    )
    assert (
        researcher.get("/researcher/studies/nope/export/trials.csv").status_code == 404
    )


def test_dataset_zip_streams_the_psych_ds_dataset(runner, study, researcher, tmp_path):
    pytest.importorskip("pyarrow")
    export_with_flask(runner, tmp_path / "out", "--format", "both", "--author", "alice")
    answer = researcher.get(
        "/researcher/studies/pilot/export.zip", query_string={"format": "both"}
    )
    assert answer.status_code == 200
    assert answer.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    assert archive.testzip() is None
    members = sorted(archive.namelist())
    on_disk = sorted(
        f"pilot/{p.relative_to(tmp_path / 'out').as_posix()}"
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    )
    assert members == on_disk
    for table in TABLE_COLUMNS:
        member = archive.read(f"pilot/{CSV_FILES[table]}")
        assert member == (tmp_path / "out" / CSV_FILES[table]).read_bytes()
    description = json.loads(archive.read("pilot/dataset_description.json"))
    assert description["creator"] == [{"@type": "Person", "name": "alice"}]

    with_ids = researcher.get(
        "/researcher/studies/pilot/export.zip", query_string={"platform_ids": "1"}
    )
    trials = zipfile.ZipFile(io.BytesIO(with_ids.data)).read(
        f"pilot/{CSV_FILES['trials']}"
    )
    assert PID_DONE.encode() in trials
    bad = researcher.get("/researcher/studies/pilot/export.zip?format=xlsx")
    assert bad.status_code == 422


def test_streams_in_pieces_without_reading_everything_first(app, study, monkeypatch):
    monkeypatch.setattr(exports, "STREAM_STEP_ROWS", 2)
    with app.app_context():
        chunks = list(
            exports.stream_table_csv(db.engine, "pilot", "trials", Pseudonymizer(KEY))
        )
    assert len(chunks) >= 5  # header and rows arrive in several pieces
    text = b"".join(chunks).decode()
    assert text.count("\n") == 10


@pytest.fixture
def impatient_app_config(app_config):
    # A writer waits at most this long for a lock before "database is locked".
    app_config["SQLITE_BUSY_TIMEOUT_MS"] = 300
    return app_config


def test_an_export_in_progress_does_not_block_participants(
    impatient_app_config, app, study, monkeypatch
):
    monkeypatch.setattr(exports, "STREAM_STEP_ROWS", 2)
    with app.app_context():
        chunks = exports.stream_table_csv(
            db.engine, "pilot", "trials", Pseudonymizer(KEY)
        )
        first = next(chunks)  # the export's read transaction is open now
    assert first.count(b"\n") == 3  # the header and two trials

    # A participant answers the last trial meanwhile: the write goes through at
    # once (a blocked writer would fail after the 300 ms busy timeout)...
    with app.app_context():
        last = db.session.scalar(select(Trial).order_by(Trial.id.desc()).limit(1))
        assert last.response is None
        last.response = "generated"
        db.session.commit()

    # ...and the export keeps reading the snapshot it started with.
    lines = (first + b"".join(chunks)).decode().splitlines()
    assert len(lines) == 10
    cells = next(csv.reader([lines[-1]]))
    assert cells[names(TRIAL_COLUMNS).index("response")] == ""


# --- analysis export ------------------------------------------------------------


def analysis_export(*args: str):
    return CliRunner().invoke(analysis_main, ["export", *args])


def test_analysis_export_writes_what_flask_export_writes(
    app, runner, study, tmp_path, monkeypatch
):
    export_with_flask(runner, tmp_path / "flask")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]

    refused = analysis_export("--db", uri, "pilot", "--out", str(tmp_path / "a"))
    assert refused.exit_code == 2
    assert "STUDY_PSEUDONYM_KEY" in refused.output

    monkeypatch.setenv("STUDY_PSEUDONYM_KEY", KEY.decode())
    result = analysis_export("--db", uri, "pilot", "--out", str(tmp_path / "analysis"))
    assert result.exit_code == 0, result.output
    for path in CSV_FILES.values():
        produced = (tmp_path / "analysis" / path).read_bytes()
        assert produced == (tmp_path / "flask" / path).read_bytes(), path


def test_analysis_export_with_platform_ids_needs_no_key(app, study, tmp_path):
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    out = tmp_path / "ids"
    result = analysis_export("--db", uri, "pilot", "--out", str(out), "--quiet")
    assert result.exit_code == 2
    result = analysis_export(
        "--db", uri, "pilot", "--out", str(out), "--include-platform-ids", "--quiet"
    )
    assert result.exit_code == 0, result.output
    trials = read_csv(out / CSV_FILES["trials"], TRIAL_COLUMNS)
    assert set(trials["participant"]) == {PID_DONE, PID_RETURNED}


def test_analysis_export_refuses_a_missing_database(tmp_path):
    missing = tmp_path / "missing.sqlite3"
    result = analysis_export("--db", str(missing), "pilot", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "neither a database URI" in result.output
    result = analysis_export("--db", f"sqlite:///{missing}", "pilot", "--out", "x")
    assert result.exit_code == 2
    assert "no SQLite database" in result.output
    assert not missing.exists()


def test_analysis_export_names_an_unknown_database_scheme(tmp_path):
    out = tmp_path / "out"
    result = analysis_export("--db", "garbage://x", "pilot", "--out", str(out))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "unknown database scheme 'garbage' in 'garbage://x'" in result.output
    assert "sqlite:///" in result.output
    assert "postgresql+psycopg://" in result.output
    assert not out.exists()


def test_analysis_export_refuses_a_file_that_is_not_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("txt.db").write_text("hello\n")
    for db_option in ("txt.db", "sqlite:///txt.db"):
        result = analysis_export("--db", db_option, "pilot", "--out", "ex4")
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.output == "Error: txt.db is not a SQLite database\n"
    assert Path("txt.db").read_text() == "hello\n"
    assert not Path("ex4").exists()


def test_analysis_export_never_writes_to_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.chdir(tmp_path)
    empty_csv, empty_db = tmp_path / "empty.csv", tmp_path / "e2.db"
    for path, db_option in (
        (empty_csv, f"sqlite:///{empty_csv}"),
        (empty_db, "e2.db"),
    ):
        path.write_bytes(b"")
        result = analysis_export(
            "--db", db_option, "pilot", "--out", "ex1", "--include-platform-ids"
        )
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.output == (
            f"Error: the database at sqlite:///{path} has no schema yet; "
            "run `flask --app study_server init-db` first\n"
        )
        assert path.read_bytes() == b""
        assert path.stat().st_size == 0
    # No journal, no export folder, nothing else.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "e2.db",
        "empty.csv",
        "instance",
    ]


def test_analysis_export_does_not_create_a_missing_configured_database(
    tmp_path, monkeypatch
):
    instance = tmp_path / "instance"
    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(instance))
    out = tmp_path / "out"
    result = analysis_export("pilot", "--out", str(out), "--include-platform-ids")
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "cannot open the database at sqlite:///" in result.output
    assert not (instance / "study.sqlite3").exists()
    assert not out.exists()


def test_analysis_export_takes_a_relative_sqlite_uri_from_the_current_folder(
    app, study, tmp_path, monkeypatch
):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("a SQLite file is needed")
    # The app fixture's database is tmp_path/study.sqlite3; its instance folder
    # (where Flask-SQLAlchemy would look) is tmp_path/instance.
    monkeypatch.chdir(tmp_path)
    for db_option, out in (
        ("study.sqlite3", "plain"),
        ("sqlite:///study.sqlite3", "uri"),
    ):
        result = analysis_export(
            "--db", db_option, "pilot", "--out", out, "--include-platform-ids"
        )
        assert result.exit_code == 0, result.output
    for path in CSV_FILES.values():
        assert Path("uri", path).read_bytes() == Path("plain", path).read_bytes()
    assert not (tmp_path / "instance" / "study.sqlite3").exists()
