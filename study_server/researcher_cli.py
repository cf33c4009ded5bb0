"""Flask commands for researchers: accounts, exports and session upkeep.

``flask --app study_server researcher create NAME`` makes a login;
``flask --app study_server export STUDY --out DIR`` writes a study's dataset;
``flask --app study_server sessions abandon-inactive`` frees the places of
silent sessions (run it from cron). ``analysis export`` reuses the export
options and :func:`run_export`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from tqdm import tqdm

from stimuli.folders import output_folder

from .db import db, requires_schema
from .errors import NotFound, StudyError
from .models import Researcher, Study
from .services import accounts, exports, lifecycle
from .services.pseudonyms import Pseudonymizer, pseudonym_key

researcher_cli = AppGroup("researcher", help="Create and manage researcher logins.")
sessions_cli = AppGroup("sessions", help="Upkeep of participants' sessions.")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: no password on standard input")
        return password
    return click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )


_password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of "
    "asking for it twice.",
)


@researcher_cli.command("create")
@click.argument("username")
@_password_stdin
@requires_schema
def create_command(username: str, password_stdin: bool) -> None:
    """Create a researcher login USERNAME; asks for the password twice.

    Usernames are 2-64 letters, digits, '.', '_' or '-', and unique ignoring
    case: 'Alice' is refused next to 'alice'. Logins, 'researcher password'
    and 'researcher unlock' accept the name in any case. Passwords have at
    least 10 characters, not all of them spaces, and are stored hashed.
    """
    password = _read_password(password_stdin)
    try:
        accounts.create_researcher(username, password)
    except StudyError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Researcher {username!r} created. Log in at /researcher/login.")


@researcher_cli.command("password")
@click.argument("username")
@_password_stdin
@requires_schema
def password_command(username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME; their open logins end."""
    password = _read_password(password_stdin)
    try:
        accounts.set_password(username, password)
    except StudyError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Password of {username!r} changed.")


@researcher_cli.command("unlock")
@click.argument("username")
@requires_schema
def unlock_command(username: str) -> None:
    """Lift the lock-out of USERNAME after too many failed logins."""
    try:
        accounts.unlock(username)
    except StudyError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Researcher {username!r} unlocked.")


@researcher_cli.command("list")
@requires_schema
def list_command() -> None:
    """Show the researcher logins, their last login and any lock-out."""
    researchers = db.session.scalars(select(Researcher).order_by(Researcher.username))
    found = False
    for researcher in researchers:
        found = True
        last = researcher.last_login_at
        locked = researcher.locked_until
        click.echo(
            f"{researcher.username:24} last login "
            f"{last.isoformat(timespec='seconds') if last else 'never'}"
            + (
                f"  locked until {locked.isoformat(timespec='seconds')}"
                if locked
                else ""
            )
        )
    if not found:
        click.echo("No researchers yet. Create one with: researcher create NAME")


# --- export -----------------------------------------------------------------


def export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``flask export`` and ``analysis export``."""
    options = [
        click.argument("study"),
        click.option(
            "--out",
            "out_dir",
            required=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder to write the dataset to (created if missing).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(exports.FORMATS),
            default="csv",
            show_default=True,
            help="CSV files, Parquet files (needs pyarrow), or both.",
        ),
        click.option(
            "--include-platform-ids",
            is_flag=True,
            help="Write participants' platform ids (Prolific PIDs, MTurk worker "
            "ids) instead of pseudonyms. Only for data that stays private.",
        ),
        click.option(
            "--author",
            "authors",
            multiple=True,
            help="Name of a creator of the dataset, for dataset_description.json "
            "(repeat for several).",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Write over an export already in the --out folder (its files "
            "are replaced one by one; others are left).",
        ),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _progress(quiet: bool) -> Callable[[str, int], Callable[[int], None]] | None:
    if quiet:
        return None

    def on_table(path: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=Path(path).name, unit=" rows", leave=False)
        done = [0]

        def tick(n: int) -> None:
            bar.update(n - done[0])
            done[0] = n
            if n >= total:
                bar.close()

        return tick

    return on_table


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    description = out_dir / exports.DESCRIPTION_FILE
    if description.exists() and not force:
        raise click.ClickException(
            f"{out_dir} already holds an export ({description.name}); "
            "choose another folder or add --force to replace it"
        )
    output_folder(out_dir)


def _known_studies() -> str:
    slugs = db.session.scalars(select(Study.slug).order_by(Study.slug)).all()
    return ", ".join(slugs) or "none"


@requires_schema
def run_export(
    app: Flask,
    study: str,
    out_dir: Path,
    fmt: str,
    include_platform_ids: bool,
    authors: tuple[str, ...],
    force: bool,
    quiet: bool,
) -> None:
    """Export ``study`` from ``app``'s database to ``out_dir`` and report it."""
    try:
        formats = exports.resolve_formats(fmt)
    except StudyError as exc:
        raise click.BadParameter(exc.message, param_hint="'--format'") from None
    try:
        key = None if include_platform_ids else pseudonym_key(app.config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    _prepare_out_dir(out_dir, force)
    try:
        report = exports.export_dataset(
            db.engine,
            study,
            out_dir,
            Pseudonymizer(key),
            formats=formats,
            authors=authors,
            on_table=_progress(quiet),
        )
    except NotFound:
        raise click.ClickException(
            f"no study {study!r} in the database; studies: {_known_studies()}"
        ) from None
    click.echo(f"Exported study {study!r} to {out_dir}:")
    for line in report.lines():
        click.echo(f"  {line}")
    current_app.logger.info(
        "export of %r to %s (%s)",
        study,
        out_dir,
        "platform ids" if include_platform_ids else "pseudonyms",
    )


@click.command("export")
@with_appcontext
@export_options
def export_command(
    study: str,
    out_dir: Path,
    fmt: str,
    include_platform_ids: bool,
    authors: tuple[str, ...],
    force: bool,
    quiet: bool,
) -> None:
    """Export STUDY as a Psych-DS dataset: trials, sessions and events tables.

    Writes dataset_description.json and data/*.csv (and data/parquet/*.parquet)
    to --out. Participants' platform ids are replaced by keyed pseudonyms unless
    --include-platform-ids is given. Rows are streamed, so memory use does not
    grow with the study.
    """
    run_export(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        study,
        out_dir,
        fmt,
        include_platform_ids,
        authors,
        force,
        quiet,
    )


# --- sessions ---------------------------------------------------------------


@sessions_cli.command("abandon-inactive")
@click.option("--study", "slug", help="Only this study (default: every study).")
@requires_schema
def abandon_command(slug: str | None) -> None:
    """Mark active sessions silent past their study's limit as abandoned.

    The limit is timing.inactive_limit_minutes of each study file. Abandoned
    sessions free their place for new participants. Safe to run from cron.
    """
    try:
        if slug is None:
            counts = lifecycle.abandon_everywhere().by_study
        else:
            counts = {
                slug: lifecycle.abandon_inactive_sessions(lifecycle.get_study(slug))
            }
    except StudyError as exc:
        raise click.ClickException(exc.message) from None
    for name, n in counts.items():
        click.echo(f"{name}: {n} session(s) abandoned")
    if not counts:
        click.echo("No open, paused or closed studies.")


def init_app(app: Flask) -> None:
    """Register the researcher commands on ``app``."""
    app.cli.add_command(researcher_cli)
    app.cli.add_command(export_command)
    app.cli.add_command(sessions_cli)
