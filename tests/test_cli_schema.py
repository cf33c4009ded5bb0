"""Commands that use the database refuse in one line when it has no schema yet.

Before ``init-db`` they used to end in a traceback about a missing table
(``no such table: study`` on SQLite, ``relation "study" does not exist`` on
PostgreSQL). These tests build their own app on a database that
``db.create_all()`` never touched.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from analysis.cli import main as analysis_main
from study_server.db import db

SECRET = "correct horse battery"
FIX = "run `flask --app study_server init-db` first"


@pytest.fixture
def bare_app(tmp_path, app_config, monkeypatch):
    """The app on a database with no tables at all (no ``db.create_all()``)."""
    from study_server import create_app

    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(app_config)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _shown_uri(app) -> str:
    with app.app_context():
        return db.engine.url.render_as_string(hide_password=True)


def _tables(app) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def _commands(tmp_path):
    """Every command that reads or writes the database, with its stdin."""
    return [
        (["study", "load", str(tmp_path / "study.toml")], None),
        (["study", "list"], None),
        (["researcher", "create", "alice", "--password-stdin"], SECRET + "\n"),
        (["researcher", "password", "alice", "--password-stdin"], SECRET + "\n"),
        (["researcher", "unlock", "alice"], None),
        (["researcher", "list"], None),
        (["export", "pilot", "--out", str(tmp_path / "out")], None),
        (["sessions", "abandon-inactive"], None),
        (["sessions", "abandon-inactive", "--study", "pilot"], None),
    ]


def test_every_database_command_refuses_before_init_db(bare_app, tmp_path):
    runner = bare_app.test_cli_runner()
    expected = (
        f"Error: the database at {_shown_uri(bare_app)} has no schema yet; {FIX}\n"
    )
    for args, stdin in _commands(tmp_path):
        result = runner.invoke(args=args, input=stdin)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == expected, args
        assert result.stdout == "", args
        assert not isinstance(result.exception, sa.exc.SQLAlchemyError), args
    assert _tables(bare_app) == set()
    assert not (tmp_path / "out").exists()


def test_analysis_export_refuses_before_init_db(bare_app, tmp_path):
    uri = bare_app.config["SQLALCHEMY_DATABASE_URI"]
    with bare_app.app_context(), db.engine.connect():
        pass  # SQLite: the file now exists, empty

    result = CliRunner().invoke(
        analysis_main,
        ["export", "--db", uri, "pilot", "--out", str(tmp_path / "out"),
         "--include-platform-ids", "--quiet"],
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: the database at {_shown_uri(bare_app)} has no schema yet; {FIX}\n"
    )
    assert not (tmp_path / "out").exists()


def test_after_init_db_the_commands_work(bare_app):
    runner = bare_app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0

    listed = runner.invoke(args=["study", "list"])
    created = runner.invoke(
        args=["researcher", "create", "alice", "--password-stdin"], input=SECRET
    )

    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("No studies yet.")
    assert created.exit_code == 0, created.output
    assert runner.invoke(args=["researcher", "list"]).output.startswith("alice ")


def test_an_old_or_unknown_schema_is_refused_too(bare_app):
    runner = bare_app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    uri = _shown_uri(bare_app)
    with bare_app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00'"))

    unknown = runner.invoke(args=["study", "list"])

    assert unknown.exit_code == 1
    assert unknown.stderr == (
        f"Error: the database at {uri} has schema revision f00, which this version "
        "of the study server does not know; run the newer version\n"
    )
    with bare_app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE event"))
    missing = runner.invoke(args=["researcher", "list"])
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: the database at {uri} has an old schema (no table event); {FIX}\n"
    )


def test_an_unreachable_database_is_named_without_its_password(tmp_path, monkeypatch):
    from study_server import create_app

    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            # Port 1 on the loopback: the connection is refused at once.
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u:s3cret@127.0.0.1:1/x",
            "STIMULUS_STORE": str(tmp_path / "stimuli"),
        }
    )

    result = app.test_cli_runner().invoke(args=["study", "list"])

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: cannot open the database at postgresql+psycopg://u:***@127.0.0.1:1/x: "
    )
    assert result.stderr.count("\n") == 1
    assert "s3cret" not in result.output
