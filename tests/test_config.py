"""Configuration order and the refusal of the placeholder secret key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from study_server import create_app
from study_server.config import PLACEHOLDER_SECRET_KEY, ConfigurationError


@pytest.fixture
def instance(tmp_path, monkeypatch):
    path = tmp_path / "instance"
    path.mkdir()
    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(path))
    for name in ("STUDY_SECRET_KEY", "STUDY_LOGIN_MAX_FAILURES", "FLASK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_defaults_put_sqlite_and_store_in_instance(instance):
    app = create_app({"TESTING": True})
    assert (
        app.config["SQLALCHEMY_DATABASE_URI"]
        == f"sqlite:///{instance / 'study.sqlite3'}"
    )
    assert app.config["STIMULUS_STORE"] == str(instance / "stimuli")
    assert app.config["LOGIN_MAX_FAILURES"] == 5


def test_order_defaults_instance_file_environment_test_mapping(instance, monkeypatch):
    (instance / "config.py").write_text(
        "SECRET_KEY = 'from-file'\nLOGIN_MAX_FAILURES = 7\nLOGIN_LOCKOUT_S = 11\n"
        "MAX_CONTENT_LENGTH = 1000\n"
    )
    monkeypatch.setenv("STUDY_LOGIN_MAX_FAILURES", "9")
    monkeypatch.setenv("STUDY_LOGIN_LOCKOUT_S", "13")
    app = create_app({"TESTING": True, "LOGIN_LOCKOUT_S": 17})

    assert app.config["SECRET_KEY"] == "from-file"  # file over default
    assert app.config["MAX_CONTENT_LENGTH"] == 1000  # file over default
    assert app.config["LOGIN_MAX_FAILURES"] == 9  # environment over file, parsed as int
    assert app.config["LOGIN_LOCKOUT_S"] == 17  # test mapping over environment
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None  # untouched default


def test_environment_sets_database_uri(instance, monkeypatch):
    monkeypatch.setenv("STUDY_SQLALCHEMY_DATABASE_URI", "postgresql+psycopg://u@h/db")
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_placeholder_key_refused_outside_debug_and_testing(instance):
    with pytest.raises(ConfigurationError, match="SECRET_KEY is the placeholder"):
        create_app()
    with pytest.raises(ConfigurationError, match="STUDY_SECRET_KEY"):
        create_app({"SECRET_KEY": ""})


@pytest.mark.parametrize("key", ["abc", "x" * 15])
def test_short_key_refused_outside_debug_and_testing(instance, key):
    with pytest.raises(
        ConfigurationError, match=f"SECRET_KEY has {len(key)} characters; at least 16"
    ):
        create_app({"SECRET_KEY": key})
    assert create_app({"SECRET_KEY": "x" * 16}).config["SECRET_KEY"] == "x" * 16
    assert create_app({"SECRET_KEY": key, "TESTING": True}).testing


def test_placeholder_key_allowed_in_testing_and_debug(instance, monkeypatch):
    assert create_app({"TESTING": True}).config["SECRET_KEY"] == PLACEHOLDER_SECRET_KEY
    monkeypatch.setenv("FLASK_DEBUG", "1")
    assert create_app().debug


def test_real_key_from_environment_starts_in_production(instance, monkeypatch):
    monkeypatch.setenv("STUDY_SECRET_KEY", "x" * 64)
    app = create_app()
    assert not app.debug and not app.testing
    assert app.config["SECRET_KEY"] == "x" * 64


def test_sqlite_runs_in_wal_mode_with_busy_timeout(app):
    from study_server.db import db

    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if db.engine.dialect.name != "sqlite":
                pytest.skip("SQLite only")
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 15_000
        finally:
            connection.close()


def test_flask_command_with_the_placeholder_key_prints_one_error_line(instance):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDY_")}
    env["STUDY_INSTANCE_PATH"] = str(instance)
    env.pop("FLASK_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "study_server", "init-db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: SECRET_KEY is the placeholder.")
    assert "python -m study_server.instance" in done.stderr
    assert not (instance / "study.sqlite3").exists()
