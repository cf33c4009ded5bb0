"""Flask commands for researchers: ``study load``, ``study list`` and ``demo``.

Run them as ``flask --app study_server <command>``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from .db import db, requires_schema, upgrade_schema
from .errors import StudyError
from .models import Session, Stimulus, Study
from .studyfile import StudyFileError

study_cli = AppGroup("study", help="Load and list studies.")


@study_cli.command("load")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@requires_schema
def load_command(study_file: Path, quiet: bool) -> None:
    """Validate STUDY_FILE and create or update its study, importing its images.

    Nothing is written when the file is invalid or its folders cannot make
    the study (missing, empty, too few usable images for the design); every
    problem is listed with the key, the bad value and what is allowed.
    Single unreadable image files (corrupt, truncated, not an image) are
    listed with the reason and left out, and the rest is imported.
    """
    from .services.studies import load_study

    try:
        report = load_study(
            study_file, current_app.config["STIMULUS_STORE"], progress=not quiet
        )
    except StudyFileError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


@study_cli.command("list")
@requires_schema
def list_command() -> None:
    """Show every study with its status, images and sessions by status."""
    studies = db.session.scalars(select(Study).order_by(Study.slug)).all()
    if not studies:
        click.echo(
            "No studies yet. Load one with: flask --app study_server study load FILE"
        )
        return
    click.echo(
        f"{'slug':24} {'status':8} {'design':8} {'dataset':12} {'images':>7}  sessions"
    )
    for study in studies:
        n_images = db.session.scalar(
            select(func.count())
            .select_from(Stimulus)
            .where(Stimulus.study_id == study.id, Stimulus.active.is_(True))
        )
        by_status = db.session.execute(
            select(Session.status, func.count())
            .where(Session.study_id == study.id)
            .group_by(Session.status)
            .order_by(Session.status)
        ).all()
        sessions = ", ".join(f"{status} {n}" for status, n in by_status) or "none"
        click.echo(
            f"{study.slug:24} {study.status:8} {study.design:8} "
            f"{study.dataset:12} {n_images:7d}  {sessions}"
        )


@click.command("demo")
@with_appcontext
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Host the participant link points to.",
)
@click.option("--port", default=5000, show_default=True, help="Port of the link.")
def demo_command(host: str, port: int) -> None:
    """Set up the built-in demo study and a researcher login.

    Creates or upgrades the database, builds the demo images (no download),
    loads the demo study and prints the participant link and a researcher
    login. Run it again at any time; it keeps what is stored. Run
    ``python -m study_server.instance`` first so the instance folder has a
    secret key (``make demo`` does).
    """
    from stimuli.demo import build_demo

    from .models import Researcher
    from .services.accounts import create_researcher, set_password
    from .services.studies import load_study

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    upgrade_schema()
    demo_dir = build_demo(Path(app.instance_path) / "demo")
    study_file = demo_dir / "study.toml" if demo_dir.is_dir() else demo_dir
    try:
        report = load_study(study_file, app.config["STIMULUS_STORE"], progress=False)
    except StudyFileError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)

    password_file = Path(app.instance_path) / "demo-researcher.txt"
    exists = db.session.scalar(select(Researcher).where(Researcher.username == "demo"))
    if exists is None or not password_file.exists():
        # A lost password file means nobody knows the password: set a new one.
        password = secrets.token_urlsafe(12)
        try:
            if exists is None:
                create_researcher("demo", password)
            else:
                set_password("demo", password)
        except StudyError as exc:
            raise click.ClickException(exc.message) from None
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Participant link:  {base}/s/{report.study.slug}")
    click.echo(
        f"Researcher login:  {base}/researcher/login  "
        f"user 'demo', password '{password}'"
    )


def init_app(app: Flask) -> None:
    from . import researcher_cli

    app.cli.add_command(study_cli)
    app.cli.add_command(demo_command)
    researcher_cli.init_app(app)
