"""Shared fixtures. Server fixtures (app, client, runner, participant) live here too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("REALISM_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project (``../shared/data``); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# The suite runs on SQLite unless this names a PostgreSQL database, e.g.
# postgresql+psycopg://postgres@127.0.0.1:5432/test (CI runs both).
TEST_DATABASE_URI = os.environ.get("STUDY_TEST_DATABASE_URI", "")


def on_postgres() -> bool:
    return TEST_DATABASE_URI.startswith("postgresql")


@pytest.fixture
def database_uri(tmp_path: Path):
    """A fresh, empty database for one test: a SQLite file or a PostgreSQL schema."""
    if not on_postgres():
        yield f"sqlite:///{tmp_path / 'study.sqlite3'}"
        return
    import secrets

    import sqlalchemy as sa

    schema = f"test_{secrets.token_hex(6)}"
    admin = sa.create_engine(TEST_DATABASE_URI)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in TEST_DATABASE_URI else "?"
    yield f"{TEST_DATABASE_URI}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def app_config(tmp_path: Path, database_uri: str) -> dict:
    """The test mapping given to create_app; tests may change it before ``app``."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "STIMULUS_STORE": str(tmp_path / "stimuli"),
    }


@pytest.fixture
def app(tmp_path: Path, app_config: dict, monkeypatch: pytest.MonkeyPatch):
    """The app on a fresh database, with its instance folder in tmp_path."""
    from study_server import create_app
    from study_server.db import db

    monkeypatch.setenv("STUDY_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(app_config)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
