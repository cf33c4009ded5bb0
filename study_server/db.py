"""The database: engine settings, migrations and the ``init-db`` command.

SQLite in the instance folder is the zero-setup default. It runs in WAL mode
with a busy timeout so that several gunicorn workers can write; PostgreSQL is
chosen by setting ``SQLALCHEMY_DATABASE_URI``. The schema is only ever changed
through the Alembic migrations in ``study_server/migrations``.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import flask_migrate
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always stored and returned as aware UTC.

    PostgreSQL keeps the offset itself; SQLite stores naive text, so values are
    converted to UTC before writing and marked UTC after reading.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite")


def _engine_options(app: Flask) -> dict[str, Any]:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if is_sqlite(uri):
        timeout_s = app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("timeout", timeout_s)
        # Transactions are begun explicitly (see _sqlite_begin) so that writers
        # can take the lock up front with BEGIN IMMEDIATE.
        connect_args.setdefault("isolation_level", None)
    else:
        options.setdefault("pool_pre_ping", False)
    return options


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        # A read-only connection (mode=ro, as `analysis export` opens) cannot
        # change the journal mode; it keeps the file's own.
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
            raise
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection: Any) -> None:
    if connection.dialect.name != "sqlite":
        return
    # Every transaction takes the write lock at BEGIN: a deferred transaction
    # that reads and then writes can fail at once with SQLITE_BUSY when
    # another writer got in between, whatever the busy timeout.
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def read_only() -> Any:
    """Begin the session's next transaction as a reader.

    On SQLite it begins DEFERRED, so readers (image downloads, dashboards)
    do not queue behind writers for the write lock; elsewhere it changes
    nothing. Call it before the transaction's first statement, and do not
    write in that transaction.
    """
    return db.session.connection(execution_options={"sqlite_begin": "DEFERRED"})


# Engines of every app in this process. gunicorn --preload forks its workers
# from the master, and a pooled connection the master opened must not be
# shared with them: each child drops the inherited pools, without closing
# the parent's connections (SQLAlchemy's advice for os.fork()).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _drop_inherited_pools() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_drop_inherited_pools)


def init_app(app: Flask) -> None:
    """Bind the database and migrations to ``app`` and register ``init-db``."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if is_sqlite(uri) and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app)
    db.init_app(app)
    with app.app_context():
        _ENGINES.update(db.engines.values())
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    app.cli.add_command(init_db_command)


def _revisions() -> tuple[set[str], set[str]]:
    """The newest migrations and every migration, by revision id."""
    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    return set(script.get_heads()), known


def schema_problem() -> str | None:
    """Say what is wrong with the app's database schema, or None if nothing.

    The schema must have every table of the models and, when Alembic made
    it, the newest migration. A database that cannot be reached is a problem
    too. Needs an app context.
    """
    from . import models  # noqa: F401  (every table in db.metadata)

    uri = db.engine.url.render_as_string(hide_password=True)
    fix = "run `flask --app study_server init-db` first"
    try:
        # DEFERRED: a look at the schema need not wait for SQLite's write lock.
        with db.engine.connect().execution_options(
            sqlite_begin="DEFERRED"
        ) as connection:
            present = set(sa.inspect(connection).get_table_names())
            current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"cannot open the database at {uri}: {reason}"
    missing = sorted(set(db.metadata.tables) - present)
    if missing == sorted(db.metadata.tables):
        return f"the database at {uri} has no schema yet; {fix}"
    if missing:
        return (
            f"the database at {uri} has an old schema (no table "
            f"{', '.join(missing)}); {fix}"
        )
    newest, known = _revisions()
    # No revision at all: db.create_all() made the schema (the tests do).
    if not current or current == newest:
        return None
    revision = ", ".join(sorted(current))
    if not current <= known:
        return (
            f"the database at {uri} has schema revision {revision}, which this "
            "version of the study server does not know; run the newer version"
        )
    return (
        f"the database at {uri} has an old schema (revision {revision}, newest "
        f"{', '.join(sorted(newest))}); {fix}"
    )


P = ParamSpec("P")
R = TypeVar("R")


def requires_schema(command: Callable[P, R]) -> Callable[P, R]:
    """Make a command that uses the database stop early if the schema is not there.

    Without it, a command run before ``init-db`` ends in a traceback about a
    missing table. The message goes to stderr with exit status 1.
    """

    @functools.wraps(command)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        problem = schema_problem()
        if problem is not None:
            raise click.ClickException(problem)
        return command(*args, **kwargs)

    return checked


def upgrade_schema() -> None:
    """Create the schema or upgrade it to the newest migration."""
    flask_migrate.upgrade(directory=MIGRATIONS_DIR)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database schema, or upgrade it to the newest version."""
    upgrade_schema()
    uri = db.engine.url.render_as_string(hide_password=True)
    click.echo(f"Database schema is up to date ({uri}).")
    current_app.logger.info("init-db: schema upgraded on %s", uri)
