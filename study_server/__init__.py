"""The study server: a Flask app for timed real-vs-generated trials."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask

from . import config


def resource_dir(name: str) -> str:
    """Return the folder ``templates`` or ``static``.

    An installed wheel carries them inside the package; a source checkout keeps
    them at the top level of the repository (DESIGN.md §3).
    """
    packaged = Path(__file__).resolve().parent / name
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parent.parent / name)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the study server.

    Configuration is read in this order, later sources winning: code defaults,
    ``instance/config.py``, ``STUDY_*`` environment variables, ``test_config``.
    """
    app = Flask(
        __name__,
        instance_path=os.environ.get("STUDY_INSTANCE_PATH") or None,
        instance_relative_config=True,
        template_folder=resource_dir("templates"),
        static_folder=resource_dir("static"),
    )
    config.load(app, test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    logging.getLogger("study_server.events").setLevel(logging.INFO)

    from . import cli, db, errors
    from .views import api, openapi, participant, researcher

    db.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    app.register_blueprint(participant.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    researcher.init_app(app)
    return app
