"""``analysis export``: a study's responses, straight from its database.

The same export as the study server's ``flask export`` command (one
implementation: :mod:`study_server.services.exports`), for a database the
analysis machine can reach or a SQLite file copied from the server.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import click
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from study_server.researcher_cli import export_options, run_export

SCHEMES = "sqlite:///path/study.sqlite3, postgresql+psycopg://user@host/db"
SQLITE_HEADER = b"SQLite format 3\x00"


def _database_uri(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    if "://" not in value:
        path = Path(value)
        if not path.is_file():
            raise click.BadParameter(
                f"{value!r} is neither a database URI ({SCHEMES}) nor an "
                "existing SQLite file",
                ctx=ctx,
                param=param,
            )
        _check_sqlite_file(path, value)
        return URL.create("sqlite", database=str(path.resolve())).render_as_string()
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    _check_driver(url, ctx, param)
    if url.get_backend_name() != "sqlite":
        return value
    database = url.database or ""
    if url.query.get("uri") and database.startswith("file:"):
        database = unquote(database.removeprefix("file:"))
        url = url.difference_update_query(["uri", "mode"])
    # Opening a missing SQLite file would create an empty database.
    if not Path(database).is_file():
        raise click.BadParameter(
            f"no SQLite database at {database!r}", ctx=ctx, param=param
        )
    _check_sqlite_file(Path(database), database)
    # Relative to the current folder, not (as Flask-SQLAlchemy would take it)
    # to the instance folder.
    absolute = url.set(database=str(Path(database).resolve()))
    return absolute.render_as_string(hide_password=False)


def _check_driver(url: URL, ctx: click.Context, param: click.Parameter) -> None:
    shown = url.render_as_string(hide_password=True)
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise click.BadParameter(
            f"unknown database scheme {url.drivername!r} in {shown!r}; use {SCHEMES}",
            ctx=ctx,
            param=param,
        ) from None
    except ImportError as exc:
        raise click.BadParameter(
            f"the driver for {url.drivername!r} ({exc.name or exc}) is not "
            f"installed; use {SCHEMES}",
            ctx=ctx,
            param=param,
        ) from None


def _check_sqlite_file(path: Path, shown: str) -> None:
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise click.ClickException(f"cannot read {shown}: {exc.strerror}") from None
    # An empty file is an empty database to SQLite (run_export says so).
    if header and header != SQLITE_HEADER:
        raise click.ClickException(f"{shown} is not a SQLite database")


def _open_read_only(dialect: Any, record: Any, cargs: list, cparams: dict) -> None:
    """Open SQLite files read-only: never written to, a missing one not created."""
    filename = cargs[0]
    if filename in ("", ":memory:"):
        return
    if cparams.get("uri"):
        base, _, query = filename.partition("?")
        options = [o for o in query.split("&") if o and not o.startswith("mode=")]
        cargs[0] = f"{base}?{'&'.join([*options, 'mode=ro'])}"
    else:
        cargs[0] = f"file:{quote(filename)}?mode=ro"
        cparams["uri"] = True


def _make_app(database_uri: str | None, include_platform_ids: bool) -> Any:
    from study_server.db import db

    app = _create_app(database_uri, include_platform_ids)
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                event.listen(engine, "do_connect", _open_read_only)
    return app


def _create_app(database_uri: str | None, include_platform_ids: bool) -> Any:
    from study_server import create_app
    from study_server.config import ConfigurationError

    overrides = {"SQLALCHEMY_DATABASE_URI": database_uri} if database_uri else {}
    try:
        return create_app(overrides or None)
    except ConfigurationError:
        pass
    # Only the placeholder SECRET_KEY is configured (e.g. a database file copied
    # to an analysis machine). No cookie is ever signed here, so a throwaway
    # key is harmless; but pseudonyms need the server's own key.
    app = create_app({**overrides, "SECRET_KEY": secrets.token_hex(32)})
    if not include_platform_ids and not app.config.get("PSEUDONYM_KEY"):
        raise click.UsageError(
            "no key for pseudonyms: the study server's configuration here has only "
            "the placeholder SECRET_KEY. Set STUDY_PSEUDONYM_KEY to the server's "
            "PSEUDONYM_KEY (or its SECRET_KEY, if PSEUDONYM_KEY is unset) so that "
            "pseudonyms agree with the server's exports, or pass "
            "--include-platform-ids."
        )
    return app


@click.command()
@click.option(
    "--db",
    "database_uri",
    callback=_database_uri,
    help="Database URI (sqlite:///path, postgresql+psycopg://user@host/db) or "
    "a SQLite file. Default: the study server's configured database "
    "(instance/config.py, STUDY_* environment variables).",
)
@export_options
def export(
    database_uri: str | None,
    study: str,
    out_dir: Path,
    fmt: str,
    include_platform_ids: bool,
    authors: tuple[str, ...],
    force: bool,
    quiet: bool,
) -> None:
    """Export STUDY's responses from its database as a Psych-DS dataset.

    Writes one row per trial (data/study-*_description-trials_data.csv, the
    columns of study_server/export_schema.py), a sessions table and the event
    log, with dataset_description.json, to --out. Participants' platform ids
    become keyed pseudonyms (the server's PSEUDONYM_KEY, else SECRET_KEY)
    unless --include-platform-ids is given. Rows are streamed, so memory use
    does not grow with the study.
    """
    from study_server.db import db

    app = _make_app(database_uri, include_platform_ids)
    with app.app_context():
        try:
            run_export(
                app, study, out_dir, fmt, include_platform_ids, authors, force, quiet
            )
        finally:
            db.session.remove()
            db.engine.dispose()
