"""``analysis export``: a study's responses, straight from its database.

The same export as the study server's ``flask export`` command (one
implementation: :mod:`study_server.services.exports`), for a database the
analysis machine can reach or a SQLite file copied from the server.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from study_server.researcher_cli import export_options, run_export


def _database_uri(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    if "://" not in value:
        path = Path(value)
        if not path.is_file():
            raise click.BadParameter(
                f"{value!r} is neither a database URI (sqlite:///path/study.sqlite3, "
                "postgresql+psycopg://user@host/db) nor an existing SQLite file",
                ctx=ctx,
                param=param,
            )
        return f"sqlite:///{path.resolve()}"
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    # Opening a missing SQLite file would create an empty database.
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise click.BadParameter(
            f"no SQLite database at {url.database!r}", ctx=ctx, param=param
        )
    return value


def _make_app(database_uri: str | None, include_platform_ids: bool) -> Any:
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
